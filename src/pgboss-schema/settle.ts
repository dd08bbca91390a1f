// Relies on (pg-boss 12.38): pgboss.job columns name, id, state, retry_count, retry_limit,
// start_after, completed_on, output; the function pgboss.job_now(); the state values 'active',
// 'completed' and 'retry'; that pg-boss's fenced complete sets exactly state, completed_on
// (job_now()) and output, matched on name, id, state = 'active' and retry_count; that `fail`
// retries while retry_count < retry_limit; that a job in 'retry' waits for start_after; and that
// fetch adds one to retry_count only for a job whose started_on is set (columns started_on,
// heartbeat_on).
import { prepared } from '../db/prepared.js';
import type { LegacyRow } from '../table/adapter.js';
import { Params } from '../table/rows.js';
import { quoteIdent, successErrorSql, type LegacyTable } from '../table/table.js';
import { PGBOSS_SCHEMA } from './schema.js';

/** A success to commit: the attempt fetched (the fence), pg-boss's output, and the row's result columns. */
export interface CompletedJob {
  id: string;
  retryCount: number;
  output: object;
  columns: LegacyRow;
}

/**
 * The statement of completeMirrored (pgboss/mirror.ts): pg-boss's side of a group of
 * successes of one queue, fenced to the attempt each was fetched at, exactly as pg-boss's own
 * fenced complete writes it (the `done` CTE), and the mirror rows of the jobs the fence lets
 * through, one data-modifying CTE per shape of result. `duration` is the mirror's SET of the
 * run's duration (empty when the table keeps none). Returns `id` of each job completed.
 */
export function completeMirroredStatement(table: LegacyTable, name: string, jobs: readonly CompletedJob[], duration: string): ReturnType<typeof prepared> {
  const { col, status } = table;
  const params = new Params();
  const nameParam = params.add(name, 'text');
  const ids = params.add(jobs.map((job) => job.id), 'uuid[]');
  const input = params.add(JSON.stringify(jobs.map((job) => ({ id: job.id, retry_count: job.retryCount, output: job.output }))), 'json');
  const byShape = new Map<string, CompletedJob[]>();
  for (const job of jobs) {
    const shape = Object.keys(job.columns).sort().join('\u0000');
    byShape.set(shape, [...(byShape.get(shape) ?? []), job]);
  }
  // The ids as an array beside each recordset: the planner guesses 100 rows for a recordset and
  // may hash-join it against the whole table; `= ANY($ids)` keeps every update an index lookup
  // whatever the statistics say (measured: 11.7 ms to about 2 ms per batch of 16).
  const mirrors = [...byShape.values()].map((group, index) => {
    const set = Object.keys(group[0]!.columns)
      .map((column) => `, ${quoteIdent(column)} = r.${quoteIdent(column)}`)
      .join('');
    const rows = params.add(JSON.stringify(group.map((job) => ({ ...job.columns, pgbossJobId: job.id }))), 'json');
    const groupIds = params.add(group.map((job) => job.id), 'uuid[]');
    return `mirror_${index} AS (
      UPDATE ${table.ref} AS j SET ${col.status} = ${status.completed}${successErrorSql(table)}, ${col.completedAt} = now(),
             ${col.updatedAt} = now()${duration}${set}
        FROM json_populate_recordset(NULL::${table.ref}, ${rows}) AS r
       WHERE j."pgbossJobId" = ANY(${groupIds}) AND j."pgbossJobId" = r."pgbossJobId" AND j.engine = 'PGBOSS'
         AND j."pgbossJobId" IN (SELECT id FROM done))`;
  });
  return prepared(
    `WITH done AS (
       UPDATE ${PGBOSS_SCHEMA}.job AS b SET completed_on = ${PGBOSS_SCHEMA}.job_now(), state = 'completed', output = i.output
         FROM json_to_recordset(${input}) AS i(id uuid, retry_count int, output jsonb)
        WHERE b.name = ${nameParam} AND b.id = ANY(${ids}) AND b.id = i.id AND b.state = 'active' AND b.retry_count = i.retry_count
        RETURNING b.id),
     ${mirrors.join(',\n     ')}
     SELECT id::text FROM done`,
    params.values,
  );
}

/**
 * Spends the active attempt's retry budget, so pg-boss's next `fail` of it is final (the job
 * goes to the dead letter queue): fenced to the attempt fetched. Values: name, id, retry_count.
 */
export const exhaustRetries = `UPDATE ${PGBOSS_SCHEMA}.job SET retry_limit = retry_count WHERE name = $1 AND id = $2 AND state = 'active' AND retry_count = $3`;

/**
 * Pushes a job pg-boss has just put in `retry` further out, never nearer than pg-boss's own
 * backoff. Values: name, id, seconds, retry_count.
 */
export const delayRetry = `UPDATE ${PGBOSS_SCHEMA}.job SET start_after = GREATEST(start_after, now() + make_interval(secs => $3))
      WHERE name = $1 AND id = $2 AND state = 'retry' AND retry_count = $4`;

/**
 * Gives fetched jobs back to their queue unrun, fenced to the attempt fetched, without spending
 * an attempt: retry_count and retry_limit both go up by one. Raising retry_count is what keeps
 * the release safe: pg-boss settles the batch after the handler returns (its complete or fail,
 * fenced to the retry_count fetched), and a job released with its old retry_count and fetched
 * again at once by another worker would be settled by that stale call while it runs there.
 * `started_on` cleared makes pg-boss's next fetch keep retry_count as it is. Values: name, ids,
 * `id:retry_count` of each, seconds before it may be fetched again. Returns the ids released.
 */
export const releaseUnrun = `UPDATE ${PGBOSS_SCHEMA}.job SET state = 'retry', retry_count = retry_count + 1, retry_limit = retry_limit + 1,
        started_on = NULL, heartbeat_on = NULL, start_after = ${PGBOSS_SCHEMA}.job_now() + make_interval(secs => $4::float8)
      WHERE name = $1 AND id = ANY($2::uuid[]) AND state = 'active' AND (id::text || ':' || retry_count) = ANY($3::text[])
      RETURNING id::text`;
