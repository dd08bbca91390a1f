import type { Queryable } from '../db/pool.js';
import type { LegacyTable } from './table.js';

/** A pg-boss job that will not run there after all, and what its row must carry back. */
export interface ReturningJob {
  pgbossId: string;
  /** Attempts its chain has made, on either engine. */
  attempts: number;
  /** When it may run again; null: now. */
  runAfter: Date | null;
}

/**
 * The rows of pg-boss jobs going back to legacy become legacy PENDING, carrying their chain's
 * attempts and due time, and keeping `pgbossJobId` so reconcile can tell if the job ever runs
 * in pg-boss too. Only a row that is still waiting flips: PENDING, or RUNNING for a run that
 * pg-boss has already ended (the job is back in `retry` after its worker died). A row that
 * says COMPLETED or FAILED is never turned back into work. Returns the pg-boss ids whose rows
 * flipped: only those jobs may then be removed from pg-boss, in the same transaction.
 */
export async function flipToLegacy(db: Queryable, table: LegacyTable, jobs: readonly ReturningJob[], reason: 'rolledback' | 'handedback'): Promise<Set<string>> {
  if (!jobs.length) return new Set();
  const { col, status } = table;
  const { rows } = await db.query<{ pgbossJobId: string }>(
    `UPDATE ${table.ref} AS j SET engine = 'LEGACY', "routeReason" = $4, ${col.status} = ${status.pending},
            ${col.attempts} = t.attempts, ${table.due} = COALESCE(t.run_after, now()), "workerId" = NULL, "heartbeatAt" = NULL,
            ${col.startedAt} = NULL, ${col.completedAt} = NULL, ${col.updatedAt} = now()
       FROM unnest($1::uuid[], $2::int[], $3::timestamptz[]) AS t(pgboss_id, attempts, run_after)
      WHERE j."pgbossJobId" = t.pgboss_id AND j.engine = 'PGBOSS' AND j.${col.status} IN (${status.pending}, ${status.running})
      RETURNING j."pgbossJobId"`,
    [jobs.map((job) => job.pgbossId), jobs.map((job) => job.attempts), jobs.map((job) => job.runAfter), reason],
  );
  return new Set(rows.map((row) => row.pgbossJobId));
}
