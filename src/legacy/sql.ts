import type { PoolClient } from '../db/pool.js';
import type { Pool } from '../db/pool.js';

/** A claimed legacy row, as the runner needs it. */
export interface ClaimedJob {
  id: string;
  type: string;
  payload: unknown;
  attempts: number;
  maxAttempts: number;
}

type Queryable = Pick<Pool, 'query'> | PoolClient;

/**
 * The claim of DESIGN §5: one row, only `engine = 'LEGACY'`, highest priority then oldest,
 * due (`runAfter`), skipping rows another runner or a migrate batch holds. `attempts` counts
 * this run, so it is the attempt number within the retry chain.
 */
export async function claimNextLegacyJob(db: Queryable, workerId: string, types: readonly string[] | undefined): Promise<ClaimedJob | undefined> {
  const { rows } = await db.query<ClaimedJob>(
    `UPDATE "Job" SET status = 'RUNNING', attempts = attempts + 1, "startedAt" = now(), "workerId" = $1,
            "heartbeatAt" = now(), "completedAt" = NULL, "updatedAt" = now()
      WHERE id = (
        SELECT id FROM "Job"
         WHERE status = 'PENDING' AND engine = 'LEGACY' AND "runAfter" <= now()
           AND ($2::text[] IS NULL OR type = ANY($2::text[]))
         ORDER BY priority DESC, "createdAt"
         LIMIT 1
         FOR UPDATE SKIP LOCKED)
      RETURNING id, type, payload, attempts, "maxAttempts"`,
    [workerId, types?.length ? types : null],
  );
  return rows[0];
}

export async function heartbeat(db: Queryable, workerId: string, ids: readonly string[]): Promise<void> {
  if (!ids.length) return;
  await db.query(
    `UPDATE "Job" SET "heartbeatAt" = now() WHERE id = ANY($1::uuid[]) AND "workerId" = $2 AND status = 'RUNNING'`,
    [ids, workerId],
  );
}

/** False when the row is no longer ours (recovered as stale meanwhile): nothing is written. */
export async function completeLegacyJob(db: Queryable, id: string, workerId: string, result: unknown, logs: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE "Job" SET status = 'COMPLETED', result = $3::jsonb, logs = $4, error = NULL, "completedAt" = now(),
            "durationInSeconds" = EXTRACT(EPOCH FROM (now() - "startedAt")), "heartbeatAt" = NULL, "updatedAt" = now()
      WHERE id = $1 AND "workerId" = $2 AND status = 'RUNNING'`,
    [id, workerId, JSON.stringify(result ?? null), logs],
  );
  return rowCount === 1;
}

export interface FailedRow {
  id: string;
  type: string;
  attempts: number;
  maxAttempts: number;
}

/** Marks a running row FAILED; `workerId` null means "whoever owned it" (stale recovery). */
export async function failLegacyJob(db: Queryable, id: string, workerId: string | null, error: string, logs: string | null): Promise<FailedRow | undefined> {
  const { rows } = await db.query<FailedRow>(
    `UPDATE "Job" SET status = 'FAILED', error = $3, logs = COALESCE($4, logs), "completedAt" = now(),
            "durationInSeconds" = EXTRACT(EPOCH FROM (now() - "startedAt")), "heartbeatAt" = NULL, "updatedAt" = now()
      WHERE id = $1 AND ($2::text IS NULL OR "workerId" = $2) AND status = 'RUNNING'
      RETURNING id, type, attempts, "maxAttempts"`,
    [id, workerId, error, logs],
  );
  return rows[0];
}

/**
 * The legacy retry model: a new PENDING row pointing at the chain's first row, on the legacy
 * engine, due after the backoff. It carries the attempt count so the chain stops at maxAttempts.
 */
export async function insertRetryRow(db: Queryable, failedId: string, delaySeconds: number): Promise<string> {
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO "Job" (id, type, payload, status, priority, attempts, "maxAttempts", "originalJobId",
                        engine, "routeReason", bucket, "runAfter", "createdAt", "updatedAt")
     SELECT gen_random_uuid(), type, payload, 'PENDING', priority, attempts, "maxAttempts", COALESCE("originalJobId", id),
            'LEGACY', "routeReason", bucket, now() + make_interval(secs => $2), now(), now()
       FROM "Job" WHERE id = $1
     RETURNING id`,
    [failedId, delaySeconds],
  );
  const row = rows[0];
  if (!row) throw new Error(`retry of ${failedId}: the failed row vanished`);
  return row.id;
}

/** Gives a row cut off by a worker shutdown back to the queue, not counting the interrupted run. */
export async function releaseLegacyJob(db: Queryable, id: string, workerId: string, reason: string): Promise<void> {
  await db.query(
    `UPDATE "Job" SET status = 'PENDING', attempts = GREATEST(attempts - 1, 0), error = $3, "workerId" = NULL,
            "startedAt" = NULL, "heartbeatAt" = NULL, "runAfter" = now(), "updatedAt" = now()
      WHERE id = $1 AND "workerId" = $2 AND status = 'RUNNING'`,
    [id, workerId, reason],
  );
}

/** Running rows whose owner stopped heartbeating, locked for this transaction. */
export async function lockStaleLegacyJobs(db: Queryable, staleAfterSeconds: number, limit: number): Promise<{ id: string; workerId: string | null }[]> {
  const { rows } = await db.query<{ id: string; workerId: string | null }>(
    `SELECT id, "workerId" FROM "Job"
      WHERE status = 'RUNNING' AND engine = 'LEGACY' AND "heartbeatAt" < now() - make_interval(secs => $1)
      ORDER BY "heartbeatAt" LIMIT $2 FOR UPDATE SKIP LOCKED`,
    [staleAfterSeconds, limit],
  );
  return rows;
}
