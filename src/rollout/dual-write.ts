import type { PgBoss } from 'pg-boss';
import type { Pool } from '../db/pool.js';
import { JobIdTakenError } from '../support/errors.js';
import { allJobsInserted, composeInsert, takenJobIds } from '../pgboss-schema/insert.js';
import type { LegacyTable } from '../table/table.js';
import { Params } from '../table/rows.js';
import { insertJobRows, jobRowsStatement, type NewJobRow } from '../table/tracking.js';
import { findCause, sqlState, SQLSTATE } from '../support/pg-errors.js';

/** What pg-boss's `{ db }` option takes: one statement at a time. */
export interface StatementRunner {
  executeSql(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
}

export interface BossJobToInsert {
  id: string;
  data: object;
  priority: number;
}

/**
 * pg-boss built an insert of a shape this module does not know how to extend; nothing was
 * executed. Raised only when the caller can't fall back to two statements (no transaction).
 */
export class NotComposable extends Error {
  constructor() {
    super("pg-boss's insert statement has a shape cutover does not know; tracking rows are written in a transaction of their own instead");
  }
}

/** Where tests and callers have always found it; the statement shapes are pgboss-schema's. */
export { composeInsert };

/**
 * The tracking rows and their pg-boss jobs, both or neither. Through `db` as one composed
 * statement when pg-boss's insert has a known shape; otherwise, when `db` is a transaction
 * (`inTransaction`), as two statements in it, else NotComposable with nothing written. An id
 * pg-boss already holds is a JobIdTakenError, with nothing written by this call.
 */
export async function insertWithRows(
  options: { boss: PgBoss; pool: Pool; table: LegacyTable; type: string; db: StatementRunner; inTransaction: boolean },
  rows: readonly (NewJobRow & { id: string })[],
  jobs: readonly BossJobToInsert[],
): Promise<void> {
  const { boss, pool, table, type, db } = options;
  if (!rows.length || !jobs.length) {
    if (rows.length) await insertJobRows(queryOf(db), table, rows);
    if (jobs.length) await insertJobs(boss, pool, type, db, jobs);
    return;
  }
  let composed = false;
  const composing: StatementRunner = {
    executeSql: async (text, values = []) => {
      const params = new Params([...values]);
      const statement = composeInsert(text, jobRowsStatement(table, rows, params, allJobsInserted(jobs.length)));
      if (!statement) {
        if (!options.inTransaction) throw new NotComposable();
        await insertJobRows(queryOf(db), table, rows);
        return db.executeSql(text, values);
      }
      composed = true;
      return db.executeSql(statement, params.values);
    },
  };
  try {
    await insertJobs(boss, pool, type, composing, jobs);
  } catch (error) {
    if (composed && isDivisionByZero(error)) throw await takenError(pool, type, jobs);
    throw error;
  }
}

/** pg-boss's insert through `db`; an id it skipped because it holds it already is a JobIdTakenError. */
async function insertJobs(boss: PgBoss, pool: Pool, type: string, db: StatementRunner, jobs: readonly BossJobToInsert[]): Promise<void> {
  const ids = await boss.insert(type, [...jobs], { db, returnId: true });
  const inserted = new Set((ids ?? []).map((id) => id.toLowerCase()));
  const skipped = jobs.filter((job) => !inserted.has(job.id.toLowerCase())).map((job) => job.id);
  if (skipped.length) throw new JobIdTakenError(type, skipped);
}

/**
 * Which ids pg-boss holds already, read on the pool: the statement that found out has failed,
 * and a caller's transaction is unusable until it rolls back to its savepoint.
 */
async function takenError(pool: Pool, type: string, jobs: readonly BossJobToInsert[]): Promise<JobIdTakenError> {
  const { rows } = await pool.query<{ id: string }>(takenJobIds, [type, jobs.map((job) => job.id)]);
  return new JobIdTakenError(type, rows.length ? rows.map((row) => row.id) : jobs.map((job) => job.id));
}

/** pg-boss wraps the division by zero (its own guard raises one too) in an error of its own, the original as `cause`. */
function isDivisionByZero(error: unknown): boolean {
  return findCause(error, (cause) => sqlState(cause) === SQLSTATE.divisionByZero) !== undefined;
}

function queryOf(db: StatementRunner) {
  return { query: async <Row>(text: string, values?: unknown[]) => (await db.executeSql(text, values)).rows as Row[] };
}
