import type { Queryable } from '../db/pool.js';
import type { LegacyRow } from '../table/adapter.js';
import { assignColumns, Params, setIf } from '../table/rows.js';
import { attemptsOnFinalFailureSql, failureTimesSql, retriedFailureSql, retryClearsSql, runningAttemptsSql, successErrorSql, type LegacyTable } from '../table/table.js';
import { archiveSucceeded } from '../table/succeeded.js';
import { completeMirroredStatement, type CompletedJob } from '../pgboss-schema/settle.js';

/**
 * The mirror row of a pg-boss job is the legacy row whose `pgbossJobId` is the job's id and
 * whose engine is PGBOSS. These are the only writes the pg-boss engine makes to it; each lands
 * in the same transaction as the pg-boss state change it mirrors, except "started", which
 * pg-boss's fetch has already made.
 */

/**
 * What starting run number `attempt` (SQL) writes to its row: RUNNING, attempts as the table
 * counts them while the run is under way (runningAttemptsSql: the run's number where attempts
 * count runs, the failed runs or retries before it otherwise), the start, this worker.
 */
export function startAssignments(table: LegacyTable, attempt: string, workerId: string): string {
  const { col, status } = table;
  return `${col.status} = ${status.running}, ${col.attempts} = ${runningAttemptsSql(table, attempt)}, ${col.startedAt} = now(), ${col.completedAt} = NULL, "workerId" = ${workerId}, ${col.updatedAt} = now()`;
}

/** A row (alias j) a pg-boss run may start: pg-boss's, and never one already COMPLETED. */
export function startableRow(table: LegacyTable): string {
  return `j.engine = 'PGBOSS' AND j.${table.col.status} <> ${table.status.completed}`;
}

const duration = (table: LegacyTable) => setIf(table.col.durationInSeconds, `EXTRACT(EPOCH FROM (now() - COALESCE(j.${table.col.startedAt}, now())))`);

/**
 * The assignments a success makes besides the status: its duration. Attempts stay as the start
 * wrote them, which is already what a success leaves as the table counts (runningAttemptsSql).
 */
const successSql = (table: LegacyTable) => duration(table);

/**
 * `result` is what the adapter's onResult made of the job's result: columns to set. `note`
 * goes to the error column of a success whose result could not all be stored.
 */
export async function markCompleted(db: Queryable, table: LegacyTable, id: string, result: LegacyRow, note?: string): Promise<number> {
  const { col, status } = table;
  const params = new Params();
  const assigned = assignColumns(table, result, params);
  const { rowCount } = await db.query(
    `UPDATE ${table.ref} AS j SET ${col.status} = ${status.completed}${successErrorSql(table, note === undefined ? undefined : params.add(note, 'text'))}, ${col.completedAt} = now(),
            ${col.updatedAt} = now()${successSql(table)}${assigned.set}
       FROM ${assigned.from}
      WHERE j."pgbossJobId" = ${params.add(id, 'uuid')} AND j.engine = 'PGBOSS'`,
    params.values,
  );
  if (rowCount) await archiveSucceeded(db, table, [id], 'pgboss');
  return rowCount ?? 0;
}

export type { CompletedJob };

/**
 * Completes successes of one queue in a single statement, so with no transaction around it:
 * pg-boss's side (state, completion time, output) fenced to the attempt each job was fetched
 * at, exactly as pg-boss's own fenced complete writes it, and the mirror rows of the jobs that
 * fence let through, one data-modifying CTE per shape of result (the columns onResult
 * returned; a column a result does not name is left alone). A job whose claim was lost (expired,
 * re-fetched, settled elsewhere) is not in `done`, so its row is not touched either. Returns the
 * ids completed. One statement instead of BEGIN, complete, mirror, COMMIT: measured as most of
 * the engine's cost per batch (DESIGN §11 asks for this atomicity without a transaction per job).
 */
export async function completeMirrored(db: Queryable, table: LegacyTable, name: string, jobs: readonly CompletedJob[]): Promise<Set<string>> {
  const { rows } = await db.query<{ id: string }>(completeMirroredStatement(table, name, jobs, successSql(table)));
  const done = new Set(rows.map((row) => row.id));
  // Where a success leaves the table: after the completion, so a failed move leaves it COMPLETED, never lost.
  await archiveSucceeded(db, table, [...done], 'pgboss');
  return done;
}

/** While pg-boss will retry, the row says PENDING with the attempts so far, never FAILED. */
export async function markFailed(db: Queryable, table: LegacyTable, id: string, error: string, attempt: number, willRetry: boolean): Promise<number> {
  const { col, status } = table;
  const { rowCount } = await db.query(
    `UPDATE ${table.ref} AS j SET ${col.status} = ${willRetry ? status.pending : status.failed}, ${col.error} = $2, ${col.attempts} = ${willRetry ? '$3' : attemptsOnFinalFailureSql(table, '$3::int')}${willRetry ? retriedFailureSql(table) : failureTimesSql(table)},
            ${col.updatedAt} = now()${willRetry ? setIf(col.durationInSeconds, 'NULL') : duration(table)}
      WHERE j."pgbossJobId" = $1 AND j.engine = 'PGBOSS'`,
    [id, error, attempt],
  );
  return rowCount ?? 0;
}

/**
 * A dead-lettered job sent back to its queue: the row waits again, and a failure time that
 * records only the failure for good (delayed_job's failed_at) no longer says it failed.
 *
 * A limit column the row's attempts have reached is raised to allow one run more. That is what
 * the send-back is in pg-boss's terms (its retry gives a failed job one more run, its attempts
 * counted on; a re-created job carries its runs and is allowed one more), and what a team's own
 * "retry this dead job" does to a table whose state is its counters: the attempts made stay as
 * the history they are, and the row reads as waiting again (`attempts < maxAttempts`) until the
 * run, not as failed. Resetting attempts to 0 instead would read as a fresh job with its whole
 * budget, which pg-boss does not give it. `attempts + 1` is one run more whatever the columns
 * count (runs, failed runs, retries: each is one more after one more failed run).
 */
export async function markRequeued(db: Queryable, table: LegacyTable, id: string): Promise<number> {
  const { col, status } = table;
  const limit = col.maxAttempts ? `, ${col.maxAttempts} = GREATEST(${col.maxAttempts}, ${col.attempts} + 1)` : '';
  const { rowCount } = await db.query(
    `UPDATE ${table.ref} SET ${col.status} = ${status.pending}, ${col.completedAt} = NULL, ${col.updatedAt} = now()${retryClearsSql(table)}${limit}
      WHERE "pgbossJobId" = $1 AND engine = 'PGBOSS'`,
    [id],
  );
  return rowCount ?? 0;
}
