import type { Queryable } from '../db/pool.js';
import type { Tx } from '../db/sql.js';
import { messageOf } from '../support/errors.js';
import type { LegacyRow } from './adapter.js';
import { insertRows } from './rows.js';
import { maxAttemptsValue, newRowIds, tablePriority, toRow, type LegacyTable } from './table.js';

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

/** A pg-boss job with no row in the table (sent after `finalize --tracking off`, or around cutover). */
export interface UntrackedJob {
  pgbossId: string;
  name: string;
  data: unknown;
  /** In cutover's order, higher first (rollout's legacyPriority of pg-boss's priority): written in the table's. */
  priority: number;
  retryLimit: number;
  createdOn: Date;
}

/** What homeUntracked did: the jobs that have a row now, or why none could be written. */
export type HomeOutcome = { homed: Set<string>; refused?: undefined } | { homed: Set<string>; refused: string };

/**
 * Gives pg-boss jobs that have no row a row of their own, written through the adapter's toRow as
 * the RolloutManager writes a tracking row, so that flipToLegacy can then send them back like
 * any other. A job that already has a row (written since it was read) is skipped. The rows
 * are written under a savepoint: when the table cannot take one (toRow fails, a column the
 * adapter does not fill refuses NULL), nothing of it is written and the caller's transaction
 * goes on, with the reason, so the jobs can be left where they are, unrun, and said so. Must
 * run in a transaction.
 */
export async function homeUntracked(db: Queryable, table: LegacyTable, jobs: readonly UntrackedJob[]): Promise<HomeOutcome> {
  if (!jobs.length) return { homed: new Set() };
  const { names } = table;
  await db.query('SAVEPOINT cutover_home_untracked');
  try {
    const { rows: taken } = await db.query<{ id: string }>(`SELECT "pgbossJobId"::text AS id FROM ${table.ref} WHERE "pgbossJobId" = ANY($1::uuid[])`, [jobs.map((job) => job.pgbossId)]);
    const skip = new Set(taken.map((row) => row.id));
    const homeless = jobs.filter((job) => !skip.has(job.pgbossId));
    const ids = table.idType === 'uuid' ? homeless.map((job) => job.pgbossId) : await newRowIds(queryTx(db), table, homeless.length);
    const rows: LegacyRow[] = homeless.map((job, index) => ({
      ...toRow(table, job.name, job.data ?? {}),
      // On a uuid table the row takes the job's id, as the RolloutManager would have written it.
      [names.id]: ids[index],
      [names.status]: table.statusValue.pending,
      [names.attempts]: 0,
      ...(names.priority ? { [names.priority]: tablePriority(table, job.priority) } : {}),
      ...(names.maxAttempts ? { [names.maxAttempts]: maxAttemptsValue(table, job.retryLimit + 1) } : {}),
      [names.createdAt]: job.createdOn,
      engine: 'PGBOSS',
      pgbossJobId: job.pgbossId,
      routeReason: 'untracked',
    }));
    await insertRows(queryTx(db), table, rows);
    await db.query('RELEASE SAVEPOINT cutover_home_untracked');
    return { homed: new Set(homeless.map((job) => job.pgbossId)) };
  } catch (error) {
    await db.query('ROLLBACK TO SAVEPOINT cutover_home_untracked');
    return { homed: new Set(), refused: messageOf(error) };
  }
}

function queryTx(db: Queryable): Pick<Tx, 'query'> {
  return { query: async <Row>(text: string, values?: unknown[]) => (await db.query(text, values)).rows as Row[] };
}
