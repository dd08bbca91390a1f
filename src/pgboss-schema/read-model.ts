/**
 * The read model's statements on pg-boss's tables (src/observe/state.ts asks for them).
 *
 * pg-boss columns these statements rely on:
 * - pgboss.job.name  (text: the queue; a type's own queue is named as the type, its dead letter
 *   queue `<type>.dlq`)
 * - pgboss.job.state (pgboss.job_state: created, retry, active, completed, cancelled, failed),
 *   and pg-boss's partial index on (name, state) of the unfinished states (created, retry, active)
 *
 * Both read pgboss.job only: call them once pg-boss has installed its schema (the read model asks
 * pgbossInstalled in the same round trip as the flags), else the statement fails on a missing table.
 */
import type { Queryable } from '../db/pool.js';
import { PGBOSS_SCHEMA } from '../state/schema-check.js';

/** pg-boss jobs of one queue in one state. */
export interface QueueSize {
  queue: string;
  state: string;
  count: number;
}

export type UnfinishedState = 'created' | 'retry' | 'active';

/**
 * Every job of the queues by queue and state, completed history included: a full count of those
 * queues, which only `cutover status` pays for. Ordered by queue, then state.
 */
export async function countQueueJobs(db: Queryable, queues: readonly string[]): Promise<QueueSize[]> {
  const { rows } = await db.query<{ queue: string; state: string; count: string }>(
    `SELECT name AS queue, state::text AS state, count(*) AS count FROM ${PGBOSS_SCHEMA}.job WHERE name = ANY($1::text[]) GROUP BY 1, 2 ORDER BY 1, 2`,
    [queues],
  );
  return rows.map((row) => ({ ...row, count: Number(row.count) }));
}

/**
 * Unfinished jobs of the queues by queue and state, served by pg-boss's partial index on
 * (name, state) of unfinished jobs: completed history is never counted. Unordered; a queue and
 * state without jobs has no row.
 */
export async function countUnfinishedQueueJobs(db: Queryable, queues: readonly string[]): Promise<{ queue: string; state: UnfinishedState; count: number }[]> {
  const { rows } = await db.query<{ queue: string; state: UnfinishedState; count: number }>(
    `SELECT name AS queue, state::text AS state, count(*)::int AS count FROM ${PGBOSS_SCHEMA}.job
      WHERE name = ANY($1::text[]) AND state IN ('created', 'retry', 'active') GROUP BY 1, 2`,
    [queues],
  );
  return rows;
}
