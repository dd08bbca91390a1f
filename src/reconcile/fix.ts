import type { PgBoss } from 'pg-boss';
import type { Pool, PoolClient } from '../db/pool.js';
import { clientTx } from '../db/sql.js';
import { withTransaction } from '../db/transaction.js';
import type { JobRegistry } from '../jobs/registry.js';
import type { LegacyRow } from '../table/adapter.js';
import { assignColumns, insertRows, Params, setIf } from '../table/rows.js';
import { attemptsOnFinalFailureSql, attemptsOnSuccessSql, failureTimesSql, maxAttemptsOf, maxAttemptsValue, newRowIds, quoteLiteral, resultColumns, retriedFailureSql, settledAttempts, successErrorSql, tablePriority, toJob, toRow, typeSql, type LegacyTable } from '../table/table.js';
import { archiveSucceeded } from '../table/succeeded.js';
import { lockFixableDrift } from '../pgboss-schema/findings.js';
import { jobExists, lockOrphanJob } from '../pgboss-schema/reads.js';
import { insertCarried } from '../pgboss/carry.js';
import { flipToLegacy } from '../table/handback.js';
import { audit } from '../state/audit.js';
import { killedTypes } from '../state/kill-switch.js';
import { legacyPriority, pgbossPriority } from '../table/priority.js';
import { findingQueries, inArchive } from './reconcile.sql.js';
import { rowStatusFor, stateMappingSql, type PgbossState } from './states.js';

/** What `--fix` may repair: lost, orphan and drift. Stuck and double need a person. */
export interface FixCounts {
  lost: number;
  orphan: number;
  drift: number;
}

export interface FixContext {
  pool: Pool;
  boss: PgBoss;
  table: LegacyTable;
  registry: JobRegistry;
  actor: string;
  types: readonly string[];
  graceSeconds: number;
  /**
   * The archive table, as `archiveAccess` found it. Orphans are adopted only when it is
   * readable or absent: an unreadable archive may hold their rows. @defaultValue 'readable'
   */
  archive?: 'readable' | 'absent' | 'unreadable';
}

const PAGE = 500;

/**
 * Runs one class's repair over its findings, a page at a time, each finding in its own
 * transaction; stops when a page repairs nothing (what is left needs a person).
 */
async function repairAll(context: Pick<FixContext, 'pool' | 'types' | 'graceSeconds'>, query: string, repair: (client: PoolClient, finding: { id: string; type: string }) => Promise<number>): Promise<number> {
  let fixed = 0;
  for (;;) {
    const { rows } = await context.pool.query<{ id: string; type: string }>(`${query} LIMIT ${PAGE}`, [context.types, context.graceSeconds]);
    let progressed = 0;
    for (const finding of rows) progressed += await withTransaction(context.pool, (client) => repair(client, finding));
    fixed += progressed;
    if (rows.length < PAGE || progressed === 0) return fixed;
  }
}

/**
 * Re-sends a lost job to pg-boss with the same id, or, when the type's kill switch is on,
 * hands it back to legacy. The row is re-checked under lock: a job that found its way back
 * meanwhile is left alone.
 */
async function fixLost(context: FixContext): Promise<number> {
  const { table } = context;
  const { col, status } = table;
  return repairAll(context, findingQueries(table).lost, async (client, { id }) => {
    const { rows } = await client.query<LegacyRow & { cutover_type: string; pgbossJobId: string }>(
      `SELECT j.*, ${typeSql(table)} AS cutover_type FROM ${table.ref} j
        WHERE j.${col.id} = $1 AND j.engine = 'PGBOSS' AND j.${col.status} IN (${status.pending}, ${status.running}) FOR UPDATE`,
      [id],
    );
    const row = rows[0];
    if (!row) return 0;
    const type = row.cutover_type;
    const { rows: present } = await client.query(jobExists, [type, row.pgbossJobId]);
    if (present.length) return 0;
    const before = { id, engine: 'PGBOSS', status: row[table.names.status] };
    // The runs made: a running row's start left its run out where attempts count failed runs or retries.
    const running = row[table.names.status] === table.statusValue.running && table.attemptsCount !== 'runs';
    const attempts = Number(row[table.names.attempts] ?? 0) + (running ? 1 : 0);
    // Read fresh for every job, under its lock: a fix that runs for minutes must see a rollback
    // that set the switch meanwhile, not the switch as it was when the fix started.
    if ((await killedTypes(client, [type])).length > 0) {
      await flipToLegacy(client, table, [{ pgbossId: row.pgbossJobId, attempts, runAfter: null }], 'rolledback');
      await audit(client, { actor: context.actor, action: 'reconcile.fix.lost', jobType: type, before, after: { engine: 'LEGACY', status: table.statusValue.pending } });
      return 1;
    }
    const job = toJob(table, row);
    await insertCarried(context.boss, client, type, [
      {
        id: row.pgbossJobId,
        data: job.payload as object,
        priority: pgbossPriority(job.priority ?? 0),
        attempts,
        maxAttempts: maxAttemptsOf(table, row, context.registry, type),
        startAfter: null,
      },
    ]);
    await client.query(`UPDATE ${table.ref} SET ${col.status} = ${status.pending}, "workerId" = NULL, ${col.updatedAt} = now() WHERE ${col.id} = $1`, [id]);
    await audit(client, { actor: context.actor, action: 'reconcile.fix.lost', jobType: type, before, after: { engine: 'PGBOSS', status: table.statusValue.pending, resent: row.pgbossJobId } });
    return 1;
  });
}

interface PgbossJobRow {
  id: string;
  name: string;
  data: unknown;
  state: PgbossState;
  priority: number;
  retryCount: number;
  retryLimit: number;
  output: { message?: string } | null;
  createdOn: Date;
  startedOn: Date | null;
  completedOn: Date | null;
}

/**
 * Adopts a pg-boss job that has no row, in the table or in its archive: the row is made from
 * the job, in its mapped state.
 */
async function fixOrphans(context: FixContext): Promise<number> {
  const { table } = context;
  const { names } = table;
  const archive = context.archive ?? 'readable';
  if (archive === 'unreadable') return 0;
  // Asked again once the job is locked, in a statement of its own: its snapshot is newer than
  // the lock's (a fix that waited on the lock read the table as it was before the wait), and
  // it reads the table and the archive at once, so a row moved between the two by a
  // concurrent archive (one statement: it leaves the row in exactly one) is found in one or
  // the other. Off a uuid table this reads the archive whole, once per adopted job: few,
  // since the orphans read already left out the archived ones.
  const tracked = `SELECT EXISTS (SELECT 1 FROM ${table.ref} j WHERE j."pgbossJobId" = $1::uuid${table.idType === 'uuid' ? ` OR j.${table.col.id} = $1::uuid` : ''})
    ${archive === 'readable' ? `OR EXISTS (${inArchive(table, '$1')})` : ''} AS tracked`;
  return repairAll(context, findingQueries(table, archive === 'readable').orphan, async (client, { id, type }) => {
    const { rows } = await client.query<PgbossJobRow>(lockOrphanJob(table), [type, id]);
    const job = rows[0];
    if (!job) return 0;
    if ((await client.query<{ tracked: boolean }>(tracked, [job.id])).rows[0]!.tracked) return 0;
    const payload = job.data ?? {};
    const unstarted = job.state === 'created' || job.state === 'retry';
    const failed = job.state === 'failed' || job.state === 'cancelled';
    const succeeded = job.state === 'completed';
    // Runs made: retry_count, plus the run that ended when the job started at all (a job back in
    // `retry` has run once more than its retry_count says), as drift and rollback count them.
    const runs = job.retryCount + (job.startedOn ? 1 : 0);
    const row: LegacyRow = {
      ...toRow(table, job.name, payload),
      // On a uuid table the row takes the job's id, as the RolloutManager would have written it.
      [names.id]: table.idType === 'uuid' ? job.id : (await newRowIds(clientTx(client), table, 1))[0],
      [names.status]: rowStatusFor(table, job.state),
      // Written as the engines leave a row that ended so: the table's own counting, order and limit.
      [names.attempts]: settledAttempts(table, runs, succeeded ? 'succeeded' : failed ? 'failed' : job.state === 'active' ? 'running' : 'unsettled'),
      ...(names.priority ? { [names.priority]: tablePriority(table, legacyPriority(job.priority)) } : {}),
      ...(names.maxAttempts ? { [names.maxAttempts]: maxAttemptsValue(table, job.retryLimit + 1) } : {}),
      engine: 'PGBOSS',
      pgbossJobId: job.id,
      routeReason: 'adopted',
      [names.error]: failed ? (job.output?.message ?? job.state) : null,
      [names.createdAt]: job.createdOn,
      // A start column of the team's own (locked_at) says its runner holds the row: one waiting again is not held.
      [names.startedAt]: unstarted && table.adapter.columns?.startedAt !== undefined ? null : job.startedOn,
      // Where completedAt means "succeeded", a failure leaves it empty; the failure time goes to failedAt.
      [names.completedAt]: succeeded || (failed && table.completedOnFailure) ? job.completedOn : null,
      ...(names.failedAt ? { [names.failedAt]: failed ? job.completedOn : null } : {}),
      ...(succeeded ? resultColumns(table, job.output, { type: job.name, payload }) : {}),
    };
    await insertRows(clientTx(client), table, [row]);
    // Where a success leaves the table, the adopted row goes where the engines would have put it.
    if (succeeded && archive === 'readable') await archiveSucceeded(client, table, [job.id], 'pgboss');
    await audit(client, { actor: context.actor, action: 'reconcile.fix.orphan', jobType: type, before: null, after: { id: row[names.id], pgbossJobId: id, adopted: true } });
    return 1;
  });
}

/**
 * Copies pg-boss's state to a drifted row when that is safe: pg-boss's final states, and a
 * queued pg-boss job whose row still says RUNNING (its worker died). A row that says COMPLETED
 * while pg-boss will still run the job is reported, never "fixed".
 */
async function fixDrift(context: Omit<FixContext, 'boss'>): Promise<number> {
  const { table } = context;
  const { col } = table;
  const fixable = lockFixableDrift(table, stateMappingSql(table));
  type Fixable = LegacyRow & { cutover_type: string; cutover_row_status: string; cutover_state: PgbossState; cutover_output: { message?: string } | null; cutover_attempts: number };
  return repairAll(context, findingQueries(table).drift, async (client, { id }) => {
    const { rows } = await client.query<Fixable>(fixable, [id]);
    const row = rows[0];
    if (!row) return 0;
    const state = row.cutover_state;
    const target = rowStatusFor(table, state);
    const params = new Params();
    const succeeded = state === 'completed';
    const failed = state === 'failed' || state === 'cancelled';
    const result = succeeded ? resultColumns(table, row.cutover_output, toJob(table, row)) : {};
    const assigned = assignColumns(table, result, params);
    // As the engines settle a row: attempts as the table counts them, and the times a success, a
    // failure for good, or a failed run waiting for its retry set on the table's own columns.
    const runs = params.add(row.cutover_attempts, 'int');
    const attempts = succeeded ? attemptsOnSuccessSql(table, runs) : failed ? attemptsOnFinalFailureSql(table, runs) : runs;
    const times = succeeded
      ? `, ${col.completedAt} = COALESCE(j.${col.completedAt}, now() AT TIME ZONE 'UTC')${successErrorSql(table)}`
      : failed
        ? failureTimesSql(table)
        : state === 'retry'
          ? retriedFailureSql(table)
          : `, ${col.completedAt} = NULL`;
    await client.query(
      `UPDATE ${table.ref} AS j SET ${col.status} = ${quoteLiteral(target)}, ${col.attempts} = ${attempts},
              ${col.updatedAt} = now(), "workerId" = NULL${times}
              ${failed ? setIf(col.error, params.add(row.cutover_output?.message ?? `pg-boss ${state}`)) : ''}${assigned.set}
         FROM ${assigned.from}
        WHERE j.${col.id} = ${params.add(id)}`,
      params.values,
    );
    // Where a success leaves the table, the row goes where the engines' completion puts it.
    if (succeeded) await archiveSucceeded(client, table, [id], 'row');
    await audit(client, { actor: context.actor, action: 'reconcile.fix.drift', jobType: row.cutover_type, before: { id, status: row.cutover_row_status }, after: { status: target, pgboss: state } });
    return 1;
  });
}

/**
 * What a pg-boss worker runs on a timer: pg-boss settled some jobs without their worker (expiry
 * of a job whose worker died on its last attempt, a supervisor's fail), so their rows still say
 * RUNNING or PENDING. Copies pg-boss's final state to them as `reconcile --fix` would, under
 * the same row lock and the same grace, audited; without it they wait for an operator.
 */
export async function mirrorSettledJobs(context: Omit<FixContext, 'boss'>): Promise<number> {
  return fixDrift(context);
}

export async function fixFindings(context: FixContext): Promise<FixCounts> {
  return { lost: await fixLost(context), orphan: await fixOrphans(context), drift: await fixDrift(context) };
}
