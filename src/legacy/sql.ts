import type { Queryable } from '../db/pool.js';
import type { LegacyRow } from '../table/adapter.js';
import { assignColumns, Params, setIf } from '../table/rows.js';
import { attemptsOnFinalFailureSql, backlogOrderSql, failureTimesSql, quoteIdent, retryClearsSql, runningAttemptsSql, runOfRunningSql, successErrorSql, typeSql, type LegacyTable } from '../table/table.js';
import { archiveSucceeded } from '../table/succeeded.js';
import { LegacyRetryConflictError } from '../support/errors.js';

/** The row is due: its scheduled time (the adapter's `runAt`, which may be empty) or cutover's `runAfter` has come. */
function dueNow(table: LegacyTable): string {
  return table.names.runAt ? `(j.${table.due} IS NULL OR j.${table.due} <= now())` : `j.${table.due} <= now()`;
}

/**
 * A legacy row with its job type as the table says it (`cutover_type`) and, for a row a run
 * holds or has just failed, that run's number (`cutover_run`), whatever the table's attempts count.
 */
export type TypedRow = LegacyRow & { cutover_type: string; cutover_run?: number };

/**
 * The claim of DESIGN §5: one row, only `engine = 'LEGACY'`, highest priority then oldest,
 * due (`runAfter`), skipping rows another runner or a migrate batch holds. `cutover_run` is this
 * run's number within the retry chain; `attempts` is written as the table counts it (this run,
 * where it counts runs; else the failed runs or retries before it, see runningAttemptsSql).
 */
export async function claimNextLegacyJob(db: Queryable, table: LegacyTable, workerId: string, types: readonly string[] | undefined): Promise<TypedRow | undefined> {
  const { col, status } = table;
  const { rows } = await db.query<TypedRow>(
    `UPDATE ${table.ref} AS j SET ${col.status} = ${status.running}, ${col.attempts} = ${runningAttemptsSql(table, `j.${col.attempts} + 1`)}, ${col.startedAt} = now(),
            "workerId" = $1, "heartbeatAt" = now(), ${col.completedAt} = NULL, ${col.updatedAt} = now()
      WHERE j.${col.id} = (
        SELECT j.${col.id} FROM ${table.ref} j
         WHERE j.${col.status} = ${status.pending} AND j.engine = 'LEGACY' AND ${dueNow(table)}
           AND ($2::text[] IS NULL OR ${typeSql(table)} = ANY($2::text[]))
         ORDER BY ${backlogOrderSql(table)}
         LIMIT 1
         FOR UPDATE SKIP LOCKED)
      RETURNING j.*, ${typeSql(table)} AS cutover_type, (${runOfRunningSql(table, 'j')})::int AS cutover_run`,
    [workerId, types?.length ? types : null],
  );
  return rows[0];
}

export async function heartbeat(db: Queryable, table: LegacyTable, workerId: string, ids: readonly string[]): Promise<void> {
  if (!ids.length) return;
  await db.query(
    `UPDATE ${table.ref} SET "heartbeatAt" = now() WHERE ${table.col.id} = ANY($1::${table.idType}[]) AND "workerId" = $2 AND ${table.col.status} = ${table.status.running}`,
    [ids, workerId],
  );
}

/**
 * The assignment (led by a comma) that counts a failed run on its running row: where attempts
 * count failed runs or retries the claim left it out (runningAttemptsSql), so the failure adds
 * it; a run that fails for good of a table counting retries is taken back by settleFinalFailure.
 */
const failedRunCounted = (table: LegacyTable) => (table.attemptsCount === 'runs' ? '' : `, ${table.col.attempts} = ${runOfRunningSql(table, 'j')}`);

const duration = (table: LegacyTable) => setIf(table.col.durationInSeconds, `EXTRACT(EPOCH FROM (now() - j.${table.col.startedAt}))`);

/**
 * `result` is the columns the adapter's onResult made of the job's result. False when the row is no longer ours
 * (recovered as stale meanwhile): nothing is written.
 */
export async function completeLegacyJob(db: Queryable, table: LegacyTable, id: string, workerId: string, result: LegacyRow, logs: string): Promise<boolean> {
  const { col, status } = table;
  const params = new Params();
  const assigned = assignColumns(table, result, params);
  // The job's output, unless the adapter puts something of the result there itself.
  const keepLogs = table.names.logs !== undefined && !(table.names.logs in result);
  const { rowCount } = await db.query(
    `UPDATE ${table.ref} AS j SET ${col.status} = ${status.completed}${successErrorSql(table)}, ${col.completedAt} = now(),
            "heartbeatAt" = NULL, ${col.updatedAt} = now()${keepLogs ? setIf(col.logs, params.add(logs)) : ''}${duration(table)}${assigned.set}
       FROM ${assigned.from}
      WHERE j.${col.id} = ${params.add(id)} AND j."workerId" = ${params.add(workerId)} AND j.${col.status} = ${status.running}`,
    params.values,
  );
  if (rowCount === 1) await archiveSucceeded(db, table, [id], 'row');
  return rowCount === 1;
}

/**
 * A success whose result the database refused (see isRefusedValue): COMPLETED all the same,
 * fenced like completeLegacyJob, without the result columns and with `note` in the error
 * column saying why. `logs` null leaves the logs column as it is (as does a table without one). False when the row is no
 * longer ours.
 */
export async function completeLegacyJobWithoutResult(
  db: Queryable,
  table: LegacyTable,
  id: string,
  workerId: string,
  note: string,
  logs: string | null,
): Promise<boolean> {
  const { col, status } = table;
  const params = new Params();
  const { rowCount } = await db.query(
    `UPDATE ${table.ref} AS j SET ${col.status} = ${status.completed}${successErrorSql(table, params.add(note, 'text'))}, ${col.completedAt} = now(),
            "heartbeatAt" = NULL, ${col.updatedAt} = now()${logs !== null && col.logs ? setIf(col.logs, params.add(logs)) : ''}${duration(table)}
      WHERE j.${col.id} = ${params.add(id)} AND j."workerId" = ${params.add(workerId)} AND j.${col.status} = ${status.running}`,
    params.values,
  );
  if (rowCount === 1) await archiveSucceeded(db, table, [id], 'row');
  return rowCount === 1;
}


/** The running row `id`, of `workerId` (null: of whoever owns it), locked for this transaction: what a failure is decided on. */
export async function lockRunningLegacyJob(db: Queryable, table: LegacyTable, id: string, workerId: string | null): Promise<TypedRow | undefined> {
  const { col, status } = table;
  const { rows } = await db.query<TypedRow>(
    `SELECT j.*, ${typeSql(table)} AS cutover_type, (${runOfRunningSql(table, 'j')})::int AS cutover_run FROM ${table.ref} j
      WHERE j.${col.id} = $1 AND ($2::text IS NULL OR j."workerId" = $2) AND j.${col.status} = ${status.running}
      FOR UPDATE`,
    [id, workerId],
  );
  return rows[0];
}

/**
 * A failed run of a same-row table that is to be retried, in one statement: the row goes from
 * RUNNING straight back to PENDING, due after the backoff, with the run's error (and a failure
 * time that records every failed run), so a trigger or change-data capture on the table never
 * sees a FAILED row with a finish time that is about to run again. Fenced like failLegacyJob;
 * false when the row is no longer ours.
 */
export async function requeueFailedLegacyJob(db: Queryable, table: LegacyTable, id: string, workerId: string | null, error: string, logs: string | null, delaySeconds: number): Promise<boolean> {
  const { col, status } = table;
  const params = new Params();
  const owner = params.add(workerId, 'text');
  const failedAt = col.failedAt ? `, ${col.failedAt} = ${table.failedAtMeans === 'failed-for-good' ? 'NULL' : 'now()'}` : '';
  const { rowCount } = await db.query(
    `UPDATE ${table.ref} AS j SET ${col.status} = ${status.pending}, ${col.error} = ${params.add(error)}, ${table.due} = now() + make_interval(secs => ${params.add(delaySeconds, 'float8')}),
            "workerId" = NULL, "heartbeatAt" = NULL, ${col.startedAt} = NULL, ${col.completedAt} = NULL, ${col.updatedAt} = now()${failedAt}${failedRunCounted(table)}
            ${col.logs ? setIf(col.logs, `COALESCE(${params.add(logs, 'text')}, j.${col.logs})`) : ''}${duration(table)}
      WHERE j.${col.id} = ${params.add(id)} AND (${owner} IS NULL OR j."workerId" = ${owner}) AND j.${col.status} = ${status.running}`,
    params.values,
  );
  return rowCount === 1;
}

/** Marks a running row FAILED; `workerId` null means "whoever owned it" (stale recovery). */
export async function failLegacyJob(db: Queryable, table: LegacyTable, id: string, workerId: string | null, error: string, logs: string | null): Promise<TypedRow | undefined> {
  const { col, status } = table;
  const params = new Params();
  const owner = params.add(workerId, 'text');
  const { rows } = await db.query<TypedRow>(
    `UPDATE ${table.ref} AS j SET ${col.status} = ${status.failed}, ${col.error} = ${params.add(error)}${failureTimesSql(table)}${failedRunCounted(table)},
            "heartbeatAt" = NULL, ${col.updatedAt} = now()${col.logs ? setIf(col.logs, `COALESCE(${params.add(logs, 'text')}, j.${col.logs})`) : ''}${duration(table)}
      WHERE j.${col.id} = ${params.add(id)} AND (${owner} IS NULL OR j."workerId" = ${owner}) AND j.${col.status} = ${status.running}
      RETURNING j.*, ${typeSql(table)} AS cutover_type, j.${col.attempts} AS cutover_run`,
    params.values,
  );
  return rows[0];
}

/**
 * The legacy retry model, as the team's table has it. New-row: a new PENDING row pointing at
 * the chain's first row, on the legacy engine, due after the backoff, carrying the job's own
 * columns and the attempt count so the chain stops at its maximum (`retryId` is its id).
 * Same-row: the failed row itself goes back to PENDING, due after the backoff, its attempts
 * and last error kept. Either way it runs in the transaction that failed the row.
 */
export async function retryLegacyJob(db: Queryable, table: LegacyTable, failedId: string, retryId: string | null, delaySeconds: number): Promise<void> {
  const { col, status } = table;
  if (table.retries === 'same-row' || !col.originalJobId) {
    const { rowCount } = await db.query(
      `UPDATE ${table.ref} SET ${col.status} = ${status.pending}, ${table.due} = now() + make_interval(secs => $2), "workerId" = NULL, "heartbeatAt" = NULL,
              ${col.startedAt} = NULL, ${col.completedAt} = NULL, ${col.updatedAt} = now()${retryClearsSql(table)}
        WHERE ${col.id} = $1 AND ${col.status} = ${status.failed}`,
      [failedId, delaySeconds],
    );
    if (rowCount !== 1) throw new LegacyRetryConflictError(failedId, 'changed');
    return;
  }
  const copied = table.copyOnRetry.map(quoteIdent);
  const { rowCount } = await db.query(
    `INSERT INTO ${table.ref} (${col.id}, ${col.status}, ${col.attempts}, ${col.originalJobId}, engine, ${table.due}, ${col.createdAt}, ${col.updatedAt}${copied.map((c) => `, ${c}`).join('')})
     ${table.idIdentityAlways ? 'OVERRIDING SYSTEM VALUE' : ''}
     SELECT $3::${table.idType}, ${table.status.pending}, ${col.attempts}, COALESCE(${col.originalJobId}, ${col.id}), 'LEGACY',
            now() + make_interval(secs => $2), now(), now()${copied.map((c) => `, ${c}`).join('')}
       FROM ${table.ref} WHERE ${col.id} = $1`,
    [failedId, delaySeconds, retryId],
  );
  if (rowCount !== 1) throw new LegacyRetryConflictError(failedId, 'vanished');
}

/**
 * A run that failed for good, where attempts count retries: the run was not a retry, so the
 * count goes back to the retries before it. Nothing for other tables. In the failing transaction.
 */
export async function settleFinalFailure(db: Queryable, table: LegacyTable, id: string): Promise<void> {
  if (table.attemptsCount !== 'retries') return;
  const { col, status } = table;
  await db.query(`UPDATE ${table.ref} AS j SET ${col.attempts} = ${attemptsOnFinalFailureSql(table, `j.${col.attempts}`)} WHERE j.${col.id} = $1 AND j.${col.status} = ${status.failed}`, [id]);
}

/**
 * Gives a row cut off by a worker shutdown back to the queue, not counting the interrupted run
 * (where attempts count failed runs or retries, the claim did not count it).
 */
export async function releaseLegacyJob(db: Queryable, table: LegacyTable, id: string, workerId: string, reason: string): Promise<void> {
  const { col, status } = table;
  await db.query(
    `UPDATE ${table.ref} SET ${col.status} = ${status.pending}${table.attemptsCount === 'runs' ? `, ${col.attempts} = GREATEST(${col.attempts} - 1, 0)` : ''}, ${col.error} = $3,
            "workerId" = NULL, ${col.startedAt} = NULL, "heartbeatAt" = NULL, ${table.due} = now(), ${col.updatedAt} = now()
      WHERE ${col.id} = $1 AND "workerId" = $2 AND ${col.status} = ${status.running}`,
    [id, workerId, reason],
  );
}

/**
 * Running rows whose owner stopped heartbeating, locked for this transaction. `ours` are the
 * caller's own jobs in flight: alive whatever their heartbeat says (it lags after a database
 * outage, and a job still recording its outcome must not be run again).
 */
export async function lockStaleLegacyJobs(
  db: Queryable,
  table: LegacyTable,
  staleAfterSeconds: number,
  limit: number,
  ours: { workerId: string; ids: readonly string[] } = { workerId: '', ids: [] },
): Promise<{ id: string; workerId: string | null }[]> {
  const { rows } = await db.query<{ id: string; workerId: string | null }>(
    `SELECT ${table.col.id}::text AS id, "workerId" FROM ${table.ref}
      WHERE ${table.col.status} = ${table.status.running} AND engine = 'LEGACY' AND "heartbeatAt" < now() - make_interval(secs => $1)
        AND NOT ("workerId" IS NOT DISTINCT FROM $3 AND ${table.col.id} = ANY($4::${table.idType}[]))
      ORDER BY "heartbeatAt" LIMIT $2 FOR UPDATE SKIP LOCKED`,
    [staleAfterSeconds, limit, ours.workerId, ours.ids],
  );
  return rows;
}
