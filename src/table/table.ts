import { createHash } from 'node:crypto';
import type { Tx } from '../db/sql.js';
import { withoutNul } from '../db/refusal.js';
import { AdapterError, messageOf, UsageError } from '../support/errors.js';
import type { JobFailure } from '../jobs/errors.js';
import type { JobRegistry } from '../jobs/registry.js';
import { maxAttempts } from '../jobs/define.js';
import { looksLikeUuid } from './ids.js';
import { priorityInOrder, type PriorityOrder } from './priority.js';
import { CUTOVER_STATUS_COLUMN, DEFAULT_COLUMNS, DEFAULT_STATUS, genericAdapter, type LegacyAdapter, type LegacyColumns, type LegacyJob, type LegacyRow, type LegacyStatus } from './adapter.js';

/** Columns cutover adds to the legacy table (`cutover init`, migration 0002 for the generic one). */
export const CUTOVER_COLUMNS = ['engine', 'pgbossJobId', 'routeReason', 'bucket', 'workerId', 'heartbeatAt', 'runAfter'] as const;

/** Columns cutover itself sets on the rows it writes; toRow and onResult may not return them. */
const MANAGED_ROLES = ['id', 'status', 'attempts', 'createdAt', 'updatedAt', 'startedAt', 'completedAt', 'originalJobId', 'error', 'logs', 'durationInSeconds', 'priority', 'maxAttempts', 'failedAt'] as const;

/**
 * Columns the completion statements of both engines assign: an onResult column among them would
 * be assigned twice. `logs` is not one: a result that carries its own logs takes their place.
 */
const COMPLETION_ROLES = ['id', 'status', 'attempts', 'createdAt', 'updatedAt', 'startedAt', 'completedAt', 'originalJobId', 'error', 'durationInSeconds', 'failedAt'] as const;

/** What the catalog says about one column of the table. */
export interface CatalogColumn {
  name: string;
  /** As format_type prints it, usable in a cast: uuid, text, "JobStatus". */
  type: string;
  /** Enum labels, when the column is an enum. */
  labels: string[] | null;
  /** Identity, generated, or a sequence default: never copied into a retry row. */
  generated: boolean;
  /** The sequence behind a serial or identity column, schema-qualified and quoted. */
  sequence?: string | null;
  /** GENERATED ALWAYS AS IDENTITY: an insert that sets it needs OVERRIDING SYSTEM VALUE. */
  identityAlways?: boolean;
  /** How a value of the column is bound (see ColumnEncoding); absent, it follows from `type`. */
  encoding?: ColumnEncoding;
}

/**
 * How cutover binds a value of a column when it writes rows: as text its type reads (`text`),
 * as JSON text (`json`: json, jsonb and domains over them), or as a field of a JSON record
 * (`record`: arrays and composites, which an array of them cannot carry through unnest).
 */
export type ColumnEncoding = 'text' | 'json' | 'record';

/**
 * Bookkeeping cutover needs that a team's table may lack, with the column `cutover init` adds
 * under the default name when it does. The id column's type is used for `originalJobId`.
 */
const ADDABLE: Partial<Record<keyof LegacyColumns, string>> = {
  attempts: 'INTEGER NOT NULL DEFAULT 0',
  updatedAt: 'TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP',
  startedAt: 'TIMESTAMPTZ(3)',
  completedAt: 'TIMESTAMPTZ(3)',
  error: 'TEXT',
  originalJobId: '',
};

/**
 * A legacy adapter checked against the database: every identifier it names exists and is
 * quoted here once, every status value is one the column accepts. All SQL on the legacy table
 * is written from this, so no module spells a column name of its own.
 */
export interface LegacyTable {
  readonly adapter: LegacyAdapter;
  /** Schema-qualified, quoted: `"public"."Job"`. Also the row type for json_populate_record. */
  readonly ref: string;
  /** For messages: `public.Job`. */
  readonly label: string;
  /** The id column's SQL type, for casts of bound arrays: `uuid`, `text`. */
  readonly idType: string;
  /** Raw column names by role; optional roles the table lacks are undefined. */
  readonly names: LegacyColumns;
  /** The same, quoted for SQL. */
  readonly col: LegacyColumns;
  /** Status values as SQL literals (`'PENDING'`), and raw. */
  readonly status: Record<LegacyStatus, string>;
  readonly statusValue: Record<LegacyStatus, string>;
  /** Columns a retry row copies from the failed row: the job's own data, not its run's. */
  readonly copyOnRetry: readonly string[];
  readonly columns: ReadonlySet<string>;
  /** Each column's type as the catalog has it, for the typed arrays new rows are bound in. */
  readonly columnTypes: ReadonlyMap<string, Pick<CatalogColumn, 'type' | 'encoding'>>;
  /** Columns cutover writes itself on every new row: toRow and onResult may not return them. */
  readonly reserved: ReadonlySet<string>;
  /**
   * Every column cutover writes when a job finishes (status, attempts, error, times, its own
   * columns): onResult may not return one, or the completion would assign it twice.
   */
  readonly managed: ReadonlySet<string>;
  readonly timestampColumns: ReadonlySet<string>;
  /** How the team retries: new rows chained by originalJobId, or the same row again. */
  readonly retries: 'new-row' | 'same-row';
  /** The quoted column that says when a row is due: the adapter's `runAt`, else cutover's `runAfter`. */
  readonly due: string;
  /** Bookkeeping columns the table lacks, with their SQL definitions: `cutover init` adds them. */
  readonly missing: ReadonlyMap<string, string>;
  /** The id column's sequence (serial or identity), for ids of rows cutover creates. */
  readonly idSequence: string | null;
  readonly idIdentityAlways: boolean;
  /** Where the state lives: the team's status column, or derived from its columns into cutover's own (adapter `state`). */
  readonly state: 'status' | 'derived';
  /** Whether a failure sets `completedAt` too (it means "finished"), or only a success does. */
  readonly completedOnFailure: boolean;
  /** What `attempts` counts: every run, the failed ones only, or the retries. */
  readonly attemptsCount: 'runs' | 'failed-runs' | 'retries';
  /** What `maxAttempts` limits: runs, or retries (one run more). */
  readonly maxAttemptsMeans: 'runs' | 'retries';
  /** Which end of the priority column runs first; cutover's own order is higher first. */
  readonly priorityOrder: PriorityOrder;
  /** What `failedAt` records: every failed run, or the failure for good only. */
  readonly failedAtMeans: 'failed-run' | 'failed-for-good';
  /** Whether a success stays in the table or moves to cutover's archive (the team's runner deletes it). */
  readonly onSuccess: 'keep' | 'archive';
  /** Whether a success empties the error column, or leaves the last failure's message in it (adapter `errorOnSuccess`). */
  readonly clearsErrorOnSuccess: boolean;
}

/**
 * The name of an object cutover adds for the table (`Job_cutover_backlog_idx`,
 * `Job_cutover_archive`), quoted, shortened with a hash to fit Postgres's 63 characters.
 */
export function cutoverObjectName(table: Pick<LegacyTable, 'adapter'>, what: string): string {
  const name = `${table.adapter.table}_cutover_${what}`;
  return quoteIdent(name.length <= 63 ? name : `${name.slice(0, 54)}_${createHash('sha256').update(name).digest('hex').slice(0, 8)}`);
}

/** Where `cutover archive` moves finished rows: created by migration 0006 (generic) or `cutover init`. */
export function archiveRef(table: Pick<LegacyTable, 'adapter'>): string {
  return `${quoteIdent(table.adapter.schema ?? 'public')}.${cutoverObjectName(table, 'archive')}`;
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export function quoteLiteral(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** The job type of a row, as SQL: the type column, or the table's one type as a literal. */
export function typeSql(table: LegacyTable, alias = 'j'): string {
  const { jobType } = table.adapter;
  return typeof jobType === 'string' ? quoteLiteral(jobType) : `${alias}.${quoteIdent(jobType.column)}`;
}

/** `ORDER BY` of the backlog: most urgent priority as the table has it, then oldest; oldest alone without a priority column. */
export function backlogOrderSql(table: LegacyTable, alias = 'j'): string {
  return `${table.col.priority ? `${alias}.${table.col.priority} ${priorityDirectionSql(table)}, ` : ''}${alias}.${table.col.createdAt}`;
}

/** The sort direction that puts a table's most urgent priority first. */
export function priorityDirectionSql(table: Pick<LegacyTable, 'priorityOrder'>): 'ASC' | 'DESC' {
  return table.priorityOrder === 'lower-first' ? 'ASC' : 'DESC';
}

/** A priority in cutover's order (higher first, as enqueue and pg-boss take it) as the table's column holds it, and back. */
export function tablePriority(table: Pick<LegacyTable, 'priorityOrder'>, priority: number): number {
  return priorityInOrder(table.priorityOrder, priority);
}

function resolveColumns(adapter: LegacyAdapter): LegacyColumns {
  const merged: Record<string, string | undefined> = { ...DEFAULT_COLUMNS, ...(adapter.state === 'derived' ? { status: CUTOVER_STATUS_COLUMN } : {}), ...adapter.columns };
  // Same-row retries have no chain to point at: no originalJobId unless the adapter names one.
  if (adapter.retries === 'same-row' && adapter.columns?.originalJobId === undefined) delete merged.originalJobId;
  for (const key of Object.keys(merged)) if (merged[key] === undefined) delete merged[key];
  return merged as unknown as LegacyColumns;
}

/** Builds the table from an adapter and the catalog's columns, checking every name on the way. */
export function describeTable(adapter: LegacyAdapter, catalog: readonly CatalogColumn[], options: { requireCutoverColumns?: boolean } = {}): LegacyTable {
  const schema = adapter.schema ?? 'public';
  const label = `${schema}.${adapter.table}`;
  if (!catalog.length) throw new AdapterError(`legacy.table: table ${label} does not exist`);
  const byName = new Map(catalog.map((column) => [column.name, column]));
  const names = resolveColumns(adapter);
  const requireCutoverColumns = options.requireCutoverColumns ?? true;
  const require = (field: string, name: string): CatalogColumn => {
    const column = byName.get(name);
    if (!column) throw new AdapterError(`${field}: column "${name}" does not exist in ${label}`);
    return column;
  };
  const missing = new Map<string, string>();
  for (const [role, name] of Object.entries(names) as [keyof LegacyColumns, string][]) {
    // A column the adapter names must exist (a typo is an error); a default name may be added by init.
    const addable = adapter.columns?.[role] === undefined ? addableFor(adapter)[role] : undefined;
    if (byName.has(name) || addable === undefined) {
      require(`legacy.columns.${role}`, name);
      continue;
    }
    if (requireCutoverColumns) {
      throw new AdapterError(`legacy.columns.${role}: column "${name}" does not exist in ${label}; name the column that holds it, or run \`cutover init\` to add it`);
    }
    missing.set(name, addable || byName.get(names.id)?.type || 'TEXT');
  }
  if (typeof adapter.jobType !== 'string') require('legacy.jobType.column', adapter.jobType.column);
  if (adapter.state === 'derived') {
    // The derived state reads the team's own columns: success is a column it sets (or the row
    // leaving the table), failure for good its attempts used up or a column it sets then.
    if (adapter.columns?.completedAt === undefined && adapter.onSuccess !== 'archive') {
      throw new AdapterError(`legacy.columns.completedAt: a table with state: 'derived' must name the column that says ${DERIVED_ROLE_MEANING.completedAt}, or say onSuccess: 'archive' when a success deletes the row`);
    }
    const failedForGood = adapter.failedAtMeans === 'failed-for-good' && adapter.columns?.failedAt !== undefined;
    if (!failedForGood && (adapter.columns?.attempts === undefined || adapter.columns.maxAttempts === undefined)) {
      throw new AdapterError(
        `legacy.columns.maxAttempts: a table with state: 'derived' must name the columns that say ${DERIVED_ROLE_MEANING.attempts} and ${DERIVED_ROLE_MEANING.maxAttempts}, or a failedAt column with failedAtMeans: 'failed-for-good'`,
      );
    }
    if (adapter.completedAtMeans === 'finished') {
      throw new AdapterError(`legacy.completedAtMeans: with state: 'derived' the completedAt column says a row succeeded ('succeeded'), got 'finished'`);
    }
  }

  const statusValue = { ...DEFAULT_STATUS, ...adapter.status };
  const statusColumn = byName.get(names.status);
  for (const [state, value] of Object.entries(statusValue)) {
    if (statusColumn?.labels && !statusColumn.labels.includes(value)) {
      throw new AdapterError(`legacy.status.${state}: '${value}' is not a value of ${statusColumn.type} (${statusColumn.labels.join(', ')})`);
    }
  }
  if (new Set(Object.values(statusValue)).size !== 4) throw new AdapterError(`legacy.status: the four states need four different values, got ${Object.values(statusValue).join(', ')}`);

  if (requireCutoverColumns) {
    const lacking = CUTOVER_COLUMNS.filter((name) => !byName.has(name));
    if (lacking.length) {
      throw new AdapterError(`${label} lacks cutover's columns (${lacking.join(', ')}): run \`cutover init\`, then \`cutover db migrate\``);
    }
  }

  const managed = new Set<string>([...MANAGED_ROLES.flatMap((role) => (names[role] ? [names[role]] : [])), ...CUTOVER_COLUMNS]);
  const copyOnRetry = [
    ...(names.priority ? [names.priority] : []),
    ...(names.maxAttempts ? [names.maxAttempts] : []),
    ...catalog.filter((column) => !managed.has(column.name) && !column.generated).map((column) => column.name),
    'routeReason',
    'bucket',
  ].filter((name) => byName.has(name));
  const managedOnCompletion = new Set<string>([...COMPLETION_ROLES.flatMap((role) => (names[role] ? [names[role]] : [])), ...CUTOVER_COLUMNS, 'heartbeatAt']);
  refuseManagedResultColumns(adapter, managedOnCompletion);
  const quoted = Object.fromEntries(Object.entries(names).map(([role, name]) => [role, quoteIdent(name as string)])) as unknown as LegacyColumns;
  return {
    adapter,
    ref: `${quoteIdent(schema)}.${quoteIdent(adapter.table)}`,
    label,
    idType: byName.get(names.id)!.type,
    names,
    col: quoted,
    status: Object.fromEntries(Object.entries(statusValue).map(([state, value]) => [state, quoteLiteral(value)])) as Record<LegacyStatus, string>,
    statusValue,
    copyOnRetry,
    columns: new Set(byName.keys()),
    columnTypes: new Map(catalog.map((column) => [column.name, { type: column.type, encoding: column.encoding }])),
    reserved: new Set([names.id, names.status, names.attempts, names.createdAt, names.updatedAt, ...CUTOVER_COLUMNS]),
    managed: managedOnCompletion,
    timestampColumns: new Set([names.createdAt, names.updatedAt, 'runAfter']),
    retries: adapter.retries ?? 'new-row',
    due: names.runAt ? quoteIdent(names.runAt) : '"runAfter"',
    missing,
    idSequence: byName.get(names.id)?.sequence ?? null,
    idIdentityAlways: byName.get(names.id)?.identityAlways ?? false,
    state: adapter.state ?? 'status',
    completedOnFailure: (adapter.completedAtMeans ?? (adapter.state === 'derived' ? 'succeeded' : 'finished')) === 'finished',
    attemptsCount: adapter.attemptsCount ?? 'runs',
    maxAttemptsMeans: adapter.maxAttemptsMeans ?? 'runs',
    priorityOrder: adapter.priorityOrder ?? 'higher-first',
    failedAtMeans: adapter.failedAtMeans ?? 'failed-run',
    onSuccess: adapter.onSuccess ?? 'keep',
    clearsErrorOnSuccess: (adapter.errorOnSuccess ?? 'clear') === 'clear',
  };
}

const DERIVED_ROLE_MEANING = { completedAt: 'a row succeeded (succeededAt)', attempts: 'how often it ran or failed', maxAttempts: 'how often it may' } as const;

/** ADDABLE, and for a table with derived state cutover's own status column. */
function addableFor(adapter: LegacyAdapter): Partial<Record<keyof LegacyColumns, string>> {
  if (adapter.state !== 'derived') return ADDABLE;
  const pending = quoteLiteral(adapter.status?.pending ?? DEFAULT_STATUS.pending);
  return { ...ADDABLE, status: `TEXT NOT NULL DEFAULT ${pending}` };
}

/**
 * A row's state as a table with derived state defines it, as a status value (SQL, over the
 * row `alias`, e.g. `NEW`): succeeded when completedAt is set, failed when its attempts are
 * used up, waiting otherwise. Null for a table with a status column of its own.
 */
export function derivedStatusSql(table: LegacyTable, alias: string): string | null {
  if (table.state !== 'derived') return null;
  const { col, status } = table;
  const failed = table.failedAtMeans === 'failed-for-good' && col.failedAt ? `${alias}.${col.failedAt} IS NOT NULL` : `${alias}.${col.attempts} >= ${alias}.${col.maxAttempts!}`;
  // A start column of the team's own (delayed_job's locked_at) says its runner holds the row.
  const running = table.adapter.columns?.startedAt !== undefined ? ` WHEN ${alias}.${col.startedAt} IS NOT NULL THEN ${status.running}` : '';
  return `CASE WHEN ${alias}.${col.completedAt} IS NOT NULL THEN ${status.completed} WHEN ${failed} THEN ${status.failed}${running} ELSE ${status.pending} END`;
}

/**
 * The assignments that record a failed run on its row (each led by a comma): the finish time
 * where completedAt means "finished" (cleared where it means "succeeded", so a failed row never
 * reads as a success to the team's queries), and the failure time where the table keeps one.
 */
export function failureTimesSql(table: LegacyTable): string {
  const { col } = table;
  return `, ${col.completedAt} = ${table.completedOnFailure ? 'now()' : 'NULL'}${col.failedAt ? `, ${col.failedAt} = now()` : ''}`;
}

/**
 * The assignment (led by a comma) a success makes to the error column: emptied, or, where the
 * table keeps the last failure's message through a success (adapter `errorOnSuccess: 'keep'`),
 * nothing. `note` (SQL) is a message of the success itself (its result could not be stored),
 * written either way when it is not null.
 */
export function successErrorSql(table: Pick<LegacyTable, 'col' | 'clearsErrorOnSuccess'>, note?: string): string {
  const { col } = table;
  if (table.clearsErrorOnSuccess) return `, ${col.error} = ${note ?? 'NULL'}`;
  return note === undefined ? '' : `, ${col.error} = COALESCE(${note}, j.${col.error})`;
}

/**
 * The assignments (each led by a comma) of a failed run that will be retried where pg-boss
 * decides it at once: a failure time that records every failed run is set, one that records
 * only the failure for good is left empty.
 */
export function retriedFailureSql(table: LegacyTable): string {
  const { col } = table;
  // A start column of the team's own (locked_at) says "held": a row waiting again is not.
  const released = table.adapter.columns?.startedAt !== undefined ? `, ${col.startedAt} = NULL` : '';
  return `, ${col.completedAt} = NULL${col.failedAt ? `, ${col.failedAt} = ${table.failedAtMeans === 'failed-for-good' ? 'NULL' : 'now()'}` : ''}${released}`;
}

/**
 * The assignment (led by a comma) a same-row retry makes to a failure time that records only
 * the failure for good: the row failed a run, not for good. Nothing otherwise.
 */
export function retryClearsSql(table: LegacyTable): string {
  return table.failedAtMeans === 'failed-for-good' && table.col.failedAt ? `, ${table.col.failedAt} = NULL` : '';
}

/**
 * The attempts a row holds while its run number `run` (SQL) is under way, as the table counts
 * them: the run counted, where attempts count runs; else the failed runs or retries before it,
 * since this run has neither failed nor been retried yet. So a team's query reads a running row
 * as it would read it between runs (`attempts < maxAttempts` stays true on the last run while it
 * runs), and a success leaves the count as the start wrote it.
 */
export function runningAttemptsSql(table: Pick<LegacyTable, 'attemptsCount'>, run: string): string {
  return table.attemptsCount === 'runs' ? run : `GREATEST((${run}) - 1, 0)`;
}

/** The run number of a row under way (alias `alias`) from the attempts its start wrote (runningAttemptsSql), as SQL. */
export function runOfRunningSql(table: Pick<LegacyTable, 'attemptsCount' | 'col'>, alias: string): string {
  return table.attemptsCount === 'runs' ? `${alias}.${table.col.attempts}` : `${alias}.${table.col.attempts} + 1`;
}

/**
 * The attempts a row keeps once its run under way succeeds, given the run number `attempt`
 * (SQL): the run counted, or, where only failed runs count, the runs before it.
 */
export function attemptsOnSuccessSql(table: LegacyTable, attempt: string): string {
  return table.attemptsCount === 'runs' ? attempt : `GREATEST(${attempt} - 1, 0)`;
}

/**
 * The attempts a row keeps once its run `attempt` (SQL) failed for good: the run counted,
 * or, where attempts count retries, the retries before it (this run was not one more).
 */
export function attemptsOnFinalFailureSql(table: LegacyTable, attempt: string): string {
  return table.attemptsCount === 'retries' ? `GREATEST(${attempt} - 1, 0)` : attempt;
}

/** The table's maxAttempts value for a job that may run `runs` times, as the column means it. */
export function maxAttemptsValue(table: Pick<LegacyTable, 'maxAttemptsMeans'>, runs: number): number {
  return table.maxAttemptsMeans === 'retries' ? Math.max(runs - 1, 0) : runs;
}

/**
 * Refuses, when the table is bound, an onResult that returns a column cutover writes itself on
 * completion: otherwise every success on either engine would fail in its completion statement.
 * onResult maps a result to columns, so it is asked about an empty result; one that throws on
 * that tells nothing here, and resultColumns still keeps such columns out at run time.
 */
function refuseManagedResultColumns(adapter: LegacyAdapter, managed: ReadonlySet<string>): void {
  if (!adapter.onResult) return;
  let columns: unknown;
  try {
    columns = adapter.onResult({}, { type: typeof adapter.jobType === 'string' ? adapter.jobType : 'unknown', payload: {} });
  } catch {
    return;
  }
  if (typeof columns !== 'object' || columns === null) return;
  const taken = Object.keys(columns).find((key) => managed.has(key));
  if (taken !== undefined) {
    throw new AdapterError(`legacy.onResult returns column "${taken}", which cutover writes itself when a job finishes: put the result in a column of your own`);
  }
}

type CatalogRow = Required<CatalogColumn>;

/** Reads the table's columns from the catalog and checks the adapter against them. */
export async function bindLegacyTable(
  db: { query<R extends object>(text: string, values?: unknown[]): Promise<{ rows: R[] }> },
  adapter: LegacyAdapter,
  options: { requireCutoverColumns?: boolean } = {},
): Promise<LegacyTable> {
  const { rows } = await db.query<CatalogRow>(
    `SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS type,
            (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = a.atttypid) AS labels,
            (a.attidentity <> '' OR a.attgenerated <> '' OR COALESCE(pg_get_expr(d.adbin, d.adrelid) LIKE 'nextval(%', false)) AS generated,
            (SELECT format('%I.%I', sn.nspname, s.relname) FROM pg_class s JOIN pg_namespace sn ON sn.oid = s.relnamespace
              WHERE s.oid = pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname)::regclass) AS sequence,
            a.attidentity = 'a' AS "identityAlways",
            CASE WHEN bt.typcategory IN ('A', 'C') THEN 'record' WHEN bt.oid IN ('json'::regtype, 'jsonb'::regtype) THEN 'json' ELSE 'text' END AS encoding
       FROM pg_class c
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
       JOIN pg_type t ON t.oid = a.atttypid
       -- A domain is bound as the type it is over.
       JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
       LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
      WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
      ORDER BY a.attnum`,
    [adapter.schema ?? 'public', adapter.table],
  );
  return describeTable(adapter, rows, options);
}

/** The generic table's columns as its migrations create them; test/table/generic-table.test.ts holds this to the migrated catalog. */
export const GENERIC_CATALOG: readonly CatalogColumn[] = [
  ['id', 'uuid'],
  ['type', 'text'],
  ['payload', 'jsonb'],
  ['status', '"JobStatus"'],
  ['priority', 'integer'],
  ['attempts', 'integer'],
  ['maxAttempts', 'integer'],
  ['originalJobId', 'uuid'],
  ['error', 'text'],
  ['logs', 'text'],
  ['result', 'jsonb'],
  ['createdAt', 'timestamp(3) without time zone'],
  ['updatedAt', 'timestamp(3) without time zone'],
  ['startedAt', 'timestamp(3) without time zone'],
  ['completedAt', 'timestamp(3) without time zone'],
  ['durationInSeconds', 'double precision'],
  ['engine', '"JobEngine"'],
  ['pgbossJobId', 'uuid'],
  ['routeReason', 'text'],
  ['bucket', 'integer'],
  ['workerId', 'text'],
  ['heartbeatAt', 'timestamp(3) with time zone'],
  ['runAfter', 'timestamp(3) with time zone'],
].map(([name, type]) => ({ name: name!, type: type!, labels: name === 'status' ? Object.values(DEFAULT_STATUS) : null, generated: false }));

/** cutover's generic `Job` table, as its migrations create it: known without asking the catalog. */
export const GENERIC_TABLE: LegacyTable = describeTable(genericAdapter, GENERIC_CATALOG);

/** The row's id as text, whatever the column's type. */
export function rowId(table: LegacyTable, row: LegacyRow): string {
  return String(row[table.names.id]);
}

/** The mapper, with the adapter's mistakes reported as such (naming the row), not as a crash. */
export function toJob(table: LegacyTable, row: LegacyRow): LegacyJob {
  let job: LegacyJob;
  try {
    job = table.adapter.toJob(row);
  } catch (error) {
    throw new AdapterError(`legacy.toJob failed on row ${rowId(table, row)} of ${table.label}: ${messageOf(error)}`, { cause: error });
  }
  if (typeof job !== 'object' || job === null || typeof job.type !== 'string' || !job.type) {
    throw new AdapterError(`legacy.toJob must return { type, payload } with a job type, got ${JSON.stringify(job)} for row ${rowId(table, row)}`);
  }
  const priority = job.priority ?? (table.names.priority ? Number(row[table.names.priority] ?? 0) : 0);
  if (!Number.isInteger(priority)) throw new AdapterError(`legacy.toJob returned priority ${String(job.priority)} for row ${rowId(table, row)}: it must be an integer`);
  // The table's order, turned into cutover's (higher first) for pg-boss and the mapper.
  return { type: job.type, payload: job.payload, priority: tablePriority(table, priority) };
}

function checkColumns(table: LegacyTable, field: string, columns: unknown): LegacyRow {
  if (typeof columns !== 'object' || columns === null || Array.isArray(columns)) throw new AdapterError(`${field} must return an object of column values, got ${JSON.stringify(columns)}`);
  for (const key of Object.keys(columns)) {
    if (!table.columns.has(key)) throw new AdapterError(`${field} returned column "${key}", which does not exist in ${table.label}`);
    if (table.reserved.has(key)) throw new AdapterError(`${field} returned column "${key}", which cutover writes itself`);
  }
  return columns as LegacyRow;
}

/** The domain columns of a new row for a job, its type column included. */
export function toRow(table: LegacyTable, type: string, payload: unknown): LegacyRow {
  let columns: unknown;
  try {
    columns = table.adapter.toRow(type, payload);
  } catch (error) {
    throw new AdapterError(`legacy.toRow failed for a ${type} job: ${messageOf(error)}`, { cause: error });
  }
  const checked = checkColumns(table, 'legacy.toRow', columns);
  // The type column, when the table has one, holds the job's type whatever toRow returned.
  return typeof table.adapter.jobType === 'string' ? checked : { ...checked, [table.adapter.jobType.column]: type };
}

/** The columns a finished job's result sets on its row; none without onResult. */
export function resultColumns(table: LegacyTable, result: unknown, job: LegacyJob): LegacyRow {
  if (!table.adapter.onResult) return {};
  let columns: unknown;
  try {
    columns = table.adapter.onResult(result, job);
  } catch (error) {
    throw new AdapterError(`legacy.onResult failed for a ${job.type} job: ${messageOf(error)}`, { cause: error });
  }
  // A success is final: a managed column an onResult returns for some results only (the probe
  // at bind time saw none) is left out, before the checks, rather than failing the completion.
  const unmanaged = typeof columns === 'object' && columns !== null && !Array.isArray(columns)
    ? Object.fromEntries(Object.entries(columns).filter(([key]) => !table.managed.has(key)))
    : columns;
  return checkColumns(table, 'legacy.onResult', unmanaged);
}

/**
 * A finished job's result as row columns, or, when the adapter cannot place it, the final
 * failure that takes the success's place: the job ran, and running it again would not help.
 */
export function placeResult(table: LegacyTable, result: unknown, job: LegacyJob): { ok: true; columns: LegacyRow } | { ok: false; failure: JobFailure } {
  try {
    return { ok: true, columns: resultColumns(table, result, job) };
  } catch (error) {
    if (!(error instanceof AdapterError)) throw error;
    return { ok: false, failure: { kind: 'non-retryable', message: error.message } };
  }
}

/**
 * The error column of a job that succeeded but whose result the database refused: both
 * engines write the same words, so their rows read alike.
 */
export function resultNotStored(refusal: unknown): string {
  return withoutNul(`succeeded, but its result could not be stored: ${messageOf(refusal)}`);
}

/**
 * Ids for `count` new rows: the adapter's newId, else the id column's own sequence (serial or
 * identity ids are drawn before the insert, so the pg-boss id can be derived from them in the
 * same transaction), else random UUIDs.
 */
export async function newRowIds(db: Pick<Tx, 'query'>, table: LegacyTable, count: number): Promise<string[]> {
  if (count <= 0) return [];
  const { newId } = table.adapter;
  if (!newId && table.idSequence) {
    const rows = await db.query<{ id: string }>(`SELECT nextval($1::regclass)::text AS id FROM generate_series(1, $2)`, [table.idSequence, count]);
    return rows.map((row) => row.id);
  }
  return Array.from({ length: count }, () => {
    const id = (newId ?? (() => crypto.randomUUID()))();
    if (typeof id !== 'string' || !id) throw new AdapterError(`legacy.newId must return a non-empty string, got ${JSON.stringify(id)}`);
    return id;
  });
}

/** The attempts a job may make: its row's `maxAttempts` column, else its type's retry policy. */
export function maxAttemptsOf(table: LegacyTable, row: LegacyRow, registry: JobRegistry, type: string): number {
  const value = table.names.maxAttempts ? row[table.names.maxAttempts] : undefined;
  // A limit of retries allows one run more than it says.
  if (typeof value === 'number') return table.maxAttemptsMeans === 'retries' ? value + 1 : value;
  const definition = registry.get(type);
  return definition ? maxAttempts(definition) : 1;
}

/** A caller-chosen id must fit the id column: a uuid table takes only UUIDs. */
export function assertIdType(table: LegacyTable, id: string): void {
  if (!id) throw new UsageError('job id must not be empty');
  if (table.idType === 'uuid' && !looksLikeUuid(id)) {
    throw new UsageError(`job id must be a UUID (${table.label}.${table.names.id} is uuid), got '${id}'`);
  }
}

/**
 * The attempts a row keeps for a job that made `runs` runs and ended as `outcome`, as the table
 * counts them: what attemptsOnSuccessSql and attemptsOnFinalFailureSql leave on a row the
 * engines settle, for a row written whole from a pg-boss job (reconcile adopting an orphan).
 * A job waiting again keeps every run it made, as the engines' retry writes it.
 */
export function settledAttempts(table: Pick<LegacyTable, 'attemptsCount'>, runs: number, outcome: 'succeeded' | 'failed' | 'running' | 'unsettled'): number {
  // A run under way is written as the engines' start writes it (runningAttemptsSql), as is a success.
  if (outcome === 'succeeded' || outcome === 'running') return table.attemptsCount === 'runs' ? runs : Math.max(runs - 1, 0);
  if (outcome === 'failed') return table.attemptsCount === 'retries' ? Math.max(runs - 1, 0) : runs;
  return runs;
}
