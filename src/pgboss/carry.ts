import type { PgBoss } from 'pg-boss';
import type { PoolClient } from '../db/pool.js';
import { clientDb } from './boss.js';
import { carryAttempts } from '../pgboss-schema/insert.js';

/** A job that arrives in pg-boss with a history: attempts already made, a time it is due. */
export interface CarriedJob {
  id: string;
  data: object;
  priority: number;
  /** Attempts the job's chain has made so far, on either engine. */
  attempts: number;
  /** Attempts the chain may make in all. */
  maxAttempts: number;
  /** When it may run: a scheduled time or a retry's backoff. */
  startAfter: Date | null;
}

/**
 * Inserts jobs that carry their chain's attempts, in the caller's transaction. pg-boss counts
 * attempts in `retry_count` (a claim of a job that ran before adds one) and retries while
 * `retry_count < retry_limit`, so a job inserted with `retry_count` = attempts made and
 * `retry_limit` = maxAttempts - 1 runs exactly the attempts its chain has left, and a later
 * rollback reads the chain's attempts straight back (rollback.sql). Returns the ids inserted:
 * pg-boss silently skips an id it already holds.
 */
export async function insertCarried(boss: PgBoss, client: PoolClient, name: string, jobs: readonly CarriedJob[]): Promise<Set<string>> {
  if (!jobs.length) return new Set();
  const ids = await boss.insert(
    name,
    jobs.map((job) => ({
      id: job.id,
      data: job.data,
      priority: job.priority,
      retryLimit: Math.max(0, job.maxAttempts - 1),
      ...(job.startAfter ? { startAfter: job.startAfter } : {}),
    })),
    { db: clientDb(client), returnId: true },
  );
  const inserted = new Set(ids ?? []);
  const carried = jobs.filter((job) => job.attempts > 0 && inserted.has(job.id));
  if (carried.length) {
    // Only this transaction can see these rows yet: no worker holds them.
    await client.query(carryAttempts, [name, carried.map((job) => job.id), carried.map((job) => job.attempts)]);
  }
  return inserted;
}
