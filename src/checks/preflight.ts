import { liveWorkers, type LiveWorker } from '../state/heartbeat.js';
import { migrationStatus } from '../db/migrate.js';
import type { Pool } from '../db/pool.js';
import { pgbossInstalled } from '../state/schema-check.js';
import { MAX_PAYLOAD_BYTES, type JobRegistry } from '../jobs/registry.js';
import { PGBOSS_SCHEMA } from '../pgboss-schema/schema.js';
import { existingQueues } from '../pgboss-schema/reads.js';
import { installedPgboss, selectSchemaVersion } from '../pgboss-schema/version.js';
import { deadLetterQueue, queueOptions } from '../pgboss/queues.js';
import { effectiveRoute, type EnvOverride } from '../rollout/decide.js';
import { readFlags } from '../state/flags.js';
import { toJob, typeSql, type LegacyTable } from '../table/table.js';
import { formatDuration } from '../support/duration.js';
import { isPermissionDenied } from '../support/pg-errors.js';
import { isTransactionPooler, LEASE_TTL_SECONDS } from '../state/leases.js';
import { pgbossHealthChecks } from './pgboss-health.js';

/**
 * `cutover preflight`: what teams report going wrong in queue migrations, checked before the
 * first ramp, each with the value measured and what to do. Read-only.
 */
export type CheckStatus = 'pass' | 'warn' | 'fail';

export interface Check {
  check: string;
  /** The job type it is about, or null for the whole database. */
  type: string | null;
  status: CheckStatus;
  /** What was measured, in words with numbers. */
  value: string;
  /** What to do; empty on a pass. */
  advice: string;
}

export interface PreflightReport {
  checks: Check[];
  status: CheckStatus;
}

export interface PreflightOptions {
  pool: Pool;
  registry: JobRegistry;
  table: LegacyTable;
  /** The migration folders this database should have applied. */
  migrationDirs: readonly string[];
  databaseUrl: string;
  /** DIRECT_URL, when one is configured: the session for LISTEN, `db migrate` and long locks. */
  directUrl?: string | undefined;
  /** Only these types; else every registered type and every type seen in the legacy table. */
  types?: readonly string[];
  /** How far back the legacy table is read for types, run times and payloads. @defaultValue 30 days */
  windowSeconds?: number;
  /** Legacy type name → registered type, for types renamed on the way. */
  aliases?: ReadonlyMap<string, string>;
  env?: EnvOverride;
  /** Rows per type read for payload sizes (the adapter's toJob runs on each). @defaultValue 2000 */
  payloadSample?: number;
}

/** The pg-boss schema version this cutover's pg-boss installs and runs on. */
export function expectedPgbossSchema(): number {
  return installedPgboss().schema;
}

const pass = (check: string, type: string | null, value: string): Check => ({ check, type, status: 'pass', value, advice: '' });
const flag = (status: 'warn' | 'fail', check: string, type: string | null, value: string, advice: string): Check => ({ check, type, status, value, advice });

async function migrationsCheck(options: PreflightOptions): Promise<Check> {
  const entries = await migrationStatus({ databaseUrl: options.databaseUrl, dirs: options.migrationDirs });
  const open = entries.filter((entry) => entry.state === 'pending' || entry.state === 'failed' || entry.state === 'modified');
  const foreign = entries.filter((entry) => entry.state === 'missing-locally');
  if (open.length) return flag('fail', 'migrations', null, open.map((entry) => `${entry.name} ${entry.state}`).join(', '), 'run `cutover db migrate` (and `cutover db status` for details)');
  if (foreign.length) return flag('warn', 'migrations', null, `applied here but not in this checkout: ${foreign.map((entry) => entry.name).join(', ')}`, 'check that this cutover and its config match what migrated the database');
  return pass('migrations', null, `${entries.length} applied`);
}

/** What needs a session, and what each part does without one (RUNBOOK.md §1). */
const NEEDS_SESSION =
  'pg-boss workers LISTEN on it (without: they poll, ~1 s pickup instead of milliseconds, and re-read flags on their TTL); ' +
  '`db migrate` runs its DDL on it; migrate, rollback and plan controllers hold their locks on it ' +
  `(without: leases, and a killed command's lock frees after up to ${LEASE_TTL_SECONDS} s instead of at once)`;
const WORKS_POOLED = 'producers (enqueue), the legacy runner, reconcile, status, dlq, rollout and the dashboard work through the pooler as they are';

/**
 * A transaction pooler between this URL and Postgres (db/pooler.ts: statements of one client
 * answered by different backends): which parts then need DIRECT_URL, and what works without it.
 */
async function poolerCheck(options: PreflightOptions): Promise<Check> {
  const pooled = await isTransactionPooler(options.databaseUrl);
  if (!pooled) return pass('connection', null, 'a session: no transaction pooler between this URL and Postgres');
  if (options.directUrl !== undefined) {
    if (await isTransactionPooler(options.directUrl)) {
      return flag('fail', 'connection', null, 'a transaction pooler, and DIRECT_URL is one too', `point DIRECT_URL at Postgres itself (or a session-mode pooler): ${NEEDS_SESSION}`);
    }
    return pass('connection', null, `a transaction pooler; DIRECT_URL is a session: ${NEEDS_SESSION.replace(/ \(without:[^)]*\)/g, '')}; ${WORKS_POOLED}`);
  }
  return flag(
    'warn',
    'connection',
    null,
    'a transaction pooler (statements outside a transaction answered by different server connections), and no DIRECT_URL',
    `give DIRECT_URL, a session to the same database: ${NEEDS_SESSION}; ${WORKS_POOLED}`,
  );
}

/**
 * An adoption guard written by an older cutover knows cutover's writes only by the session
 * setting `cutover.writer`, which cutover no longer sends (a transaction pooler refuses startup
 * options): such a guard refuses cutover's own updates of rows pg-boss owns. Found by the
 * guard's own error text in the table's trigger functions.
 */
async function guardCheck(pool: Pool, table: LegacyTable): Promise<Check> {
  // tgtype's bit 8 is DELETE (pg_trigger.h TRIGGER_TYPE_DELETE).
  const { rows } = await pool.query<{ source: string; onDelete: boolean }>(
    `SELECT p.prosrc AS source, (t.tgtype & 8) <> 0 AS "onDelete" FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
      WHERE t.tgrelid = to_regclass($1) AND NOT t.tgisinternal AND p.prosrc LIKE '%cutover guard%'`,
    [table.ref],
  );
  const again = 'run `cutover init` again and apply what it writes with `cutover db migrate`';
  if (!rows.length) return pass('adoption guard', null, 'none on this table');
  if (rows.some((row) => !row.source.includes('application_name'))) {
    return flag('fail', 'adoption guard', null, `the guard on ${table.label} predates this cutover and refuses its writes to rows pg-boss owns`, again);
  }
  // An older guard refuses updates only: a runner whose success deletes its row could still take away a row pg-boss runs.
  if (!rows.some((row) => row.onDelete)) {
    return flag('warn', 'adoption guard', null, `the guard on ${table.label} refuses the team runner's updates of rows pg-boss owns, not its deletes`, again);
  }
  return pass('adoption guard', null, 'recognises cutover\'s connections by application_name; refuses the team runner\'s updates and deletes of rows pg-boss owns');
}

async function pgbossSchemaCheck(pool: Pool): Promise<Check> {
  const expected = expectedPgbossSchema();
  if (!(await pgbossInstalled(pool))) {
    return flag('warn', 'pg-boss schema', null, 'not installed', `the first pg-boss worker installs schema version ${expected}; start one before the first ramp`);
  }
  const read = await pool.query<{ version: number }>(selectSchemaVersion).catch((error: unknown) => {
    // A read-only role (the dashboard's) may not read pg-boss's bookkeeping: say so, don't fail the rest.
    if (isPermissionDenied(error)) return undefined;
    throw error;
  });
  if (!read) return flag('warn', 'pg-boss schema', null, 'this role may not read pgboss.version', 'run preflight as the operator (or the owner) to check the schema version');
  const { rows } = read;
  const installed = Number(rows[0]?.version);
  if (installed === expected) return pass('pg-boss schema', null, `version ${installed}`);
  if (installed < expected) {
    return flag(
      'fail',
      'pg-boss schema',
      null,
      `version ${installed}, this cutover's pg-boss runs ${expected}`,
      `starting this cutover's pg-boss would migrate the shared schema '${PGBOSS_SCHEMA}' from ${installed} to ${expected} for every process that uses it: ` +
        `upgrade it deliberately (as the owner, with every pg-boss process on the new version: \`npx pg-boss migrate\` shows the SQL), or keep cutover on the pg-boss that matches`,
    );
  }
  return flag('fail', 'pg-boss schema', null, `version ${installed}, newer than this cutover's pg-boss (${expected})`, 'upgrade cutover so its pg-boss matches the schema');
}

/** Types in the legacy table in the window, with counts. */
async function legacyTypes(pool: Pool, table: LegacyTable, windowSeconds: number): Promise<Map<string, number>> {
  const { rows } = await pool.query<{ type: string; count: number }>(
    `SELECT ${typeSql(table)} AS type, count(*)::int AS count FROM ${table.ref} j
      WHERE j.${table.col.createdAt} >= (now() AT TIME ZONE 'UTC') - make_interval(secs => $1::float8) GROUP BY 1 ORDER BY 1`,
    [windowSeconds],
  );
  return new Map(rows.map((row) => [row.type, row.count]));
}

function registryChecks(seen: ReadonlyMap<string, number>, options: PreflightOptions, window: string): Check[] {
  const known = new Set(options.registry.names());
  return [...seen].map(([type, count]) => {
    const target = options.aliases?.get(type) ?? type;
    if (known.has(target)) return pass('registered', type, `${count} row(s) in the last ${window}${target === type ? '' : `, as ${target}`}`);
    return flag(
      'fail',
      'registered',
      type,
      `${count} row(s) in the last ${window}, no job definition${target === type ? '' : ` (alias ${target} is not registered either)`}`,
      `add a definition for ${target} to the registry, or map the old name with --alias ${type}=<registered type>`,
    );
  });
}

async function queueChecks(pool: Pool, types: readonly string[]): Promise<Check[]> {
  const { rows } = await pool.query<{ name: string }>(existingQueues, [types.flatMap((type) => [type, deadLetterQueue(type)])]);
  const present = new Set(rows.map((row) => row.name));
  return types.map((type) => {
    const missing = [type, deadLetterQueue(type)].filter((name) => !present.has(name));
    if (!missing.length) return pass('queues', type, `${type} and ${deadLetterQueue(type)} exist`);
    // pg-boss #484: a send to a queue that was never created does nothing useful.
    return flag('fail', 'queues', type, `missing: ${missing.join(', ')}`, 'start a pg-boss worker for the type (`cutover worker --engine pgboss` creates the registry\'s queues and dead-letter queues)');
  });
}

interface Percentiles {
  type: string;
  runs: number;
  p99: number | null;
  max: number | null;
}

async function runTimeChecks(pool: Pool, table: LegacyTable, options: PreflightOptions, types: readonly string[], window: string): Promise<Check[]> {
  const { col, status } = table;
  const { rows } = await pool.query<Percentiles>(
    `SELECT ${typeSql(table)} AS type, count(*)::int AS runs,
            percentile_cont(0.99) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM j.${col.completedAt} - j.${col.startedAt}))::float8 AS p99,
            max(EXTRACT(EPOCH FROM j.${col.completedAt} - j.${col.startedAt}))::float8 AS max
       FROM ${table.ref} j
      WHERE j.engine = 'LEGACY' AND j.${col.status} IN (${status.completed}, ${status.failed}) AND j.${col.startedAt} IS NOT NULL AND j.${col.completedAt} IS NOT NULL
        AND ${typeSql(table)} = ANY($1::text[]) AND j.${col.createdAt} >= (now() AT TIME ZONE 'UTC') - make_interval(secs => $2::float8)
      GROUP BY 1`,
    [types, options.windowSeconds ?? 30 * 86_400],
  );
  const byType = new Map(rows.map((row) => [row.type, row]));
  return types.map((type) => {
    const definition = options.registry.require(type);
    const timeout = definition.timeoutSeconds;
    const expiry = queueOptions(definition).expireInSeconds ?? timeout;
    const measured = byType.get(type);
    const limits = `timeout ${formatDuration(timeout)}, pg-boss expiry ${formatDuration(expiry)}`;
    if (!measured || measured.p99 === null || measured.max === null) return pass('run time', type, `no finished legacy run in the last ${window} to compare (${limits})`);
    const value = `p99 ${formatDuration(round(measured.p99))}, max ${formatDuration(round(measured.max))} over ${measured.runs} run(s); ${limits}`;
    const advice = `raise timeoutSeconds of ${type} above its longest run (pg-boss expires a job at its timeout plus grace and runs it again), or make the job shorter`;
    if (measured.p99 > timeout) return flag('fail', 'run time', type, value, advice);
    if (measured.max > timeout) return flag('warn', 'run time', type, value, advice);
    return pass('run time', type, value);
  });
}

const round = (seconds: number) => Math.round(seconds * 1000) / 1000;

/** Payload sizes as pg-boss would store them: the adapter's toJob on the newest rows of each type. */
async function payloadChecks(pool: Pool, table: LegacyTable, options: PreflightOptions, types: readonly string[]): Promise<Check[]> {
  const sample = options.payloadSample ?? 2000;
  return Promise.all(
    types.map(async (type) => {
      const { rows } = await pool.query<Record<string, unknown>>(
        `SELECT j.* FROM ${table.ref} j WHERE ${typeSql(table)} = $1 AND j.engine = 'LEGACY' ORDER BY j.${table.col.createdAt} DESC LIMIT $2`,
        [type, sample],
      );
      const sizes = rows.map((row) => Buffer.byteLength(JSON.stringify(toJob(table, row).payload ?? null))).sort((a, b) => a - b);
      const limit = `limit ${kib(MAX_PAYLOAD_BYTES)}`;
      if (!sizes.length) return pass('payload size', type, `no legacy rows to measure (${limit})`);
      const p99 = sizes[Math.min(sizes.length - 1, Math.ceil(sizes.length * 0.99) - 1)]!;
      const max = sizes[sizes.length - 1]!;
      const value = `p99 ${kib(p99)}, max ${kib(max)} over the newest ${sizes.length} row(s); ${limit}`;
      if (max > MAX_PAYLOAD_BYTES) return flag('fail', 'payload size', type, value, 'rows over the limit cannot move to pg-boss (migrate quarantines them): store the bulk elsewhere and pass a reference');
      if (p99 > MAX_PAYLOAD_BYTES / 2) return flag('warn', 'payload size', type, value, 'payloads near the limit: consider passing a reference instead of the data');
      return pass('payload size', type, value);
    }),
  );
}

const kib = (bytes: number) =>
  bytes < 1024 ? `${bytes} B` : bytes < 1024 * 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${Number((bytes / 1024 / 1024).toFixed(2))} MiB`;

/**
 * A type that gets traffic on an engine needs a live worker there: pg-boss workers and
 * cutover's legacy runner announce themselves (WorkerHeartbeat); a team's own runner does not,
 * so a legacy row of the type started in the last 10 minutes counts as a live runner too.
 */
async function workerChecks(pool: Pool, table: LegacyTable, options: PreflightOptions, types: readonly string[]): Promise<Check[]> {
  const [workers, flags, legacyActivity] = await Promise.all([liveWorkers(pool), readFlags(pool), legacyStarts(pool, table, types)]);
  const covering = (engine: LiveWorker['engine'], type: string) => workers.filter((worker) => worker.engine === engine && worker.types.includes(type));
  const checks: Check[] = [];
  for (const type of types) {
    const route = effectiveRoute(type, flags, options.env ?? {});
    const activity = legacyActivity.get(type) ?? { pending: 0, recentStart: false };
    const pgboss = covering('PGBOSS', type);
    const recurring = options.registry.require(type).schedule;
    if (pgboss.length) checks.push(pass('pg-boss worker', type, `${pgboss.length} live (${hosts(pgboss)})`));
    // pg-boss's scheduler files the ticks of a recurring type whatever its route: no worker, no tick.
    else if (recurring) checks.push(flag('fail', 'pg-boss worker', type, `none live; recurring (${recurring.cron}), so no tick is filed`, 'start one: cutover worker --engine pgboss'));
    else if (route.percent > 0) checks.push(flag('fail', 'pg-boss worker', type, `none live; ${route.percent}% of new jobs go to pg-boss`, 'start one: cutover worker --engine pgboss'));
    else checks.push(flag('warn', 'pg-boss worker', type, 'none live (no traffic on pg-boss yet)', 'start one before the first ramp: cutover worker --engine pgboss'));

    const legacy = covering('LEGACY', type);
    const needed = route.percent < 100 || activity.pending > 0;
    if (legacy.length) checks.push(pass('legacy runner', type, `${legacy.length} live (${hosts(legacy)})`));
    else if (activity.recentStart) checks.push(pass('legacy runner', type, 'your own runner: a row was started in the last 10 minutes'));
    else if (needed && activity.pending > 0) checks.push(flag('fail', 'legacy runner', type, `none seen; ${activity.pending} legacy row(s) waiting`, 'start the legacy runner (yours, or cutover worker --engine legacy)'));
    else if (needed) checks.push(flag('warn', 'legacy runner', type, `none seen in 10 minutes; ${100 - route.percent}% of new jobs go to legacy`, 'make sure a legacy runner is up for this type'));
    else checks.push(pass('legacy runner', type, 'not needed: 100 % on pg-boss and nothing waiting on legacy'));
  }
  const versions = new Set(workers.map((worker) => worker.version));
  if (versions.size > 1) {
    const detail = [...versions].map((version) => `${version} on ${hosts(workers.filter((worker) => worker.version === version))}`).join('; ');
    checks.push(flag('warn', 'worker versions', null, `mixed: ${detail}`, 'finish the deploy so every worker runs one cutover version'));
  } else if (versions.size === 1) {
    checks.push(pass('worker versions', null, `all ${[...versions][0]}`));
  }
  return checks;
}

const hosts = (workers: readonly LiveWorker[]) => [...new Set(workers.map((worker) => `${worker.host}:${worker.pid}`))].join(', ');

async function legacyStarts(pool: Pool, table: LegacyTable, types: readonly string[]): Promise<Map<string, { pending: number; recentStart: boolean }>> {
  const { col, status } = table;
  const { rows } = await pool.query<{ type: string; pending: number; recent: boolean }>(
    `SELECT ${typeSql(table)} AS type, count(*) FILTER (WHERE j.${col.status} = ${status.pending})::int AS pending,
            bool_or(j.${col.startedAt} > (now() AT TIME ZONE 'UTC') - interval '10 minutes') AS recent
       FROM ${table.ref} j
      WHERE j.engine = 'LEGACY' AND ${typeSql(table)} = ANY($1::text[])
        AND (j.${col.status} = ${status.pending} OR j.${col.startedAt} > (now() AT TIME ZONE 'UTC') - interval '10 minutes')
      GROUP BY 1`,
    [types],
  );
  return new Map(rows.map((row) => [row.type, { pending: row.pending, recentStart: row.recent === true }]));
}

/** Every check; the report fails if any check fails. */
export async function preflight(options: PreflightOptions): Promise<PreflightReport> {
  const { pool, table, registry } = options;
  const windowSeconds = options.windowSeconds ?? 30 * 86_400;
  const window = formatDuration(windowSeconds);
  const seen = await legacyTypes(pool, table, windowSeconds);
  const inScope = (type: string) => !options.types?.length || options.types.includes(type);
  const seenInScope = new Map([...seen].filter(([type]) => inScope(type) || inScope(options.aliases?.get(type) ?? type)));
  const registered = new Set(registry.names());
  // The registered types in scope: those asked for, or every one.
  const types = (options.types?.length ? options.types : registry.names()).filter((type) => registered.has(type));
  const installed = await pgbossInstalled(pool);
  const checks: Check[] = [
    await poolerCheck(options),
    await migrationsCheck(options),
    await guardCheck(options.pool, options.table),
    await pgbossSchemaCheck(pool),
    ...registryChecks(seenInScope, options, window),
    ...(installed ? await queueChecks(pool, types) : []),
    ...(installed ? await pgbossHealthChecks(pool, registry, types) : []),
    ...(await runTimeChecks(pool, table, options, types, window)),
    ...(await payloadChecks(pool, table, options, types)),
    ...(await workerChecks(pool, table, options, types)),
  ];
  const status: CheckStatus = checks.some((c) => c.status === 'fail') ? 'fail' : checks.some((c) => c.status === 'warn') ? 'warn' : 'pass';
  return { checks, status };
}
