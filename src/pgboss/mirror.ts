import type { Pool, PoolClient } from '../db/pool.js';

type Queryable = Pick<Pool, 'query'> | PoolClient;

/**
 * The mirror row of a pg-boss job is the `Job` row whose `pgbossJobId` is the job's id. These
 * are the only writes the pg-boss engine makes to it; each lands in the same transaction as the
 * pg-boss state change it mirrors, except "started", which pg-boss's fetch has already made.
 */
export async function markStarted(db: Queryable, jobs: readonly { id: string; attempt: number }[], workerId: string): Promise<void> {
  if (!jobs.length) return;
  await db.query(
    `UPDATE "Job" AS j SET status = 'RUNNING', attempts = t.attempt, "startedAt" = now(), "completedAt" = NULL,
            "workerId" = $3, "updatedAt" = now()
       FROM unnest($1::uuid[], $2::int[]) AS t(id, attempt)
      WHERE j."pgbossJobId" = t.id AND j.status <> 'COMPLETED'`,
    [jobs.map((job) => job.id), jobs.map((job) => job.attempt), workerId],
  );
}

export async function markCompleted(db: Queryable, id: string, result: unknown): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE "Job" SET status = 'COMPLETED', result = $2::jsonb, error = NULL, "completedAt" = now(),
            "durationInSeconds" = EXTRACT(EPOCH FROM (now() - COALESCE("startedAt", now()))), "updatedAt" = now()
      WHERE "pgbossJobId" = $1`,
    [id, JSON.stringify(result ?? null)],
  );
  return rowCount ?? 0;
}

/** While pg-boss will retry, the row says PENDING with the attempts so far, never FAILED. */
export async function markFailed(db: Queryable, id: string, error: string, attempt: number, willRetry: boolean): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE "Job" SET status = $3::"JobStatus", error = $2, attempts = $4,
            "completedAt" = CASE WHEN $5 THEN NULL ELSE now() END,
            "durationInSeconds" = CASE WHEN $5 THEN NULL ELSE EXTRACT(EPOCH FROM (now() - COALESCE("startedAt", now()))) END,
            "updatedAt" = now()
      WHERE "pgbossJobId" = $1`,
    [id, error, willRetry ? 'PENDING' : 'FAILED', attempt, willRetry],
  );
  return rowCount ?? 0;
}

/** A dead-lettered job sent back to its queue: the row waits again. */
export async function markRequeued(db: Queryable, id: string): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE "Job" SET status = 'PENDING', "completedAt" = NULL, "updatedAt" = now() WHERE "pgbossJobId" = $1`,
    [id],
  );
  return rowCount ?? 0;
}
