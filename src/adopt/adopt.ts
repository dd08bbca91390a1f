import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ProjectConfig } from '../config/file.js';
import { builtinMigrationDirs, builtinMigrationsDir, cutoverTablesMigrationsDir } from '../db/migrate.js';
import { UsageError } from '../support/errors.js';
import { archiveRef, cutoverObjectName, derivedStatusSql, priorityDirectionSql, quoteIdent, type LegacyTable } from '../table/table.js';

/** The built-in migration that creates cutover's own tables; an adoption migration carries it too. */
const CUTOVER_TABLES_MIGRATION = '0003_cutover_tables';

export const ADOPT_SUFFIX = '_cutover_adopt';

function indexName(table: LegacyTable, what: string): string {
  return cutoverObjectName(table, what);
}

/**
 * The SQL that adopts a team's table: cutover's columns, the indexes its queries need, and
 * cutover's own tables, all IF NOT EXISTS, so it applies on a table that already has some of
 * them. It holds no timestamp: generating it twice gives the same text.
 */
export async function adoptionSql(table: LegacyTable, added: ReadonlyMap<string, string> = new Map()): Promise<string> {
  const { col, status, ref } = table;
  const schema = quoteIdent(table.adapter.schema ?? 'public');
  const engineType = `${schema}."JobEngine"`;
  const typeColumn = typeof table.adapter.jobType === 'string' ? undefined : quoteIdent(table.adapter.jobType.column);
  const cutoverTables = await readFile(join(builtinMigrationsDir, CUTOVER_TABLES_MIGRATION, 'migration.sql'), 'utf8');
  return `-- cutover adopts ${table.label}: written by \`cutover init\` from the legacy adapter in cutover.config.
-- Everything is IF NOT EXISTS: on a busy table, build the indexes CONCURRENTLY beforehand
-- (RUNBOOK.md, "Adopting your table") and this migration then takes no long lock. Adding a
-- column with a constant default does not rewrite the table (Postgres 11+).

DO $$ BEGIN
    CREATE TYPE ${engineType} AS ENUM ('LEGACY', 'PGBOSS');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

ALTER TABLE ${ref}
    ADD COLUMN IF NOT EXISTS "engine" ${engineType} NOT NULL DEFAULT 'LEGACY',
    ADD COLUMN IF NOT EXISTS "pgbossJobId" UUID,
    ADD COLUMN IF NOT EXISTS "routeReason" TEXT,
    ADD COLUMN IF NOT EXISTS "bucket" INTEGER,
    ADD COLUMN IF NOT EXISTS "workerId" TEXT,
    ADD COLUMN IF NOT EXISTS "heartbeatAt" TIMESTAMPTZ(3),
    ADD COLUMN IF NOT EXISTS "runAfter" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP${[...addedColumns(table, added)]
      .map(([name, definition]) => `,\n    ADD COLUMN IF NOT EXISTS ${quoteIdent(name)} ${definition}`)
      .join('')};
${backfillSql(table)}
-- The pg-boss id of each job that went through pg-boss: mirror updates, rollback, reconcile.
CREATE UNIQUE INDEX IF NOT EXISTS ${indexName(table, 'pgbossJobId_key')} ON ${ref} ("pgbossJobId");

-- The legacy backlog in claim order, only rows waiting on legacy: the claim and the mapper.
CREATE INDEX IF NOT EXISTS ${indexName(table, 'backlog_idx')} ON ${ref} (${col.priority ? `${col.priority} ${priorityDirectionSql(table)}, ` : ''}${col.createdAt})
    WHERE ${col.status} = ${status.pending} AND "engine" = 'LEGACY';

-- Rows by engine and state: stale-job recovery, reconcile.
CREATE INDEX IF NOT EXISTS ${indexName(table, 'claim_idx')} ON ${ref} ("engine", ${col.status}, ${table.due});
${
  col.originalJobId
    ? `
-- Retry chains.
CREATE INDEX IF NOT EXISTS ${indexName(table, 'originalJobId_idx')} ON ${ref} (${col.originalJobId});
`
    : ''
}
-- Per-type windows for reconcile and outcome comparison.
CREATE INDEX IF NOT EXISTS ${indexName(table, 'type_createdAt_idx')} ON ${ref} (${typeColumn ? `${typeColumn}, ` : ''}${col.createdAt});

${guardSql(table)}
${derivedStateSql(table)}
-- Where \`cutover archive\` moves finished rows: the same columns, a row archived once.
CREATE TABLE IF NOT EXISTS ${archiveRef(table)} (LIKE ${ref} INCLUDING DEFAULTS);
DO $$ BEGIN
    ALTER TABLE ${archiveRef(table)} ADD CONSTRAINT ${cutoverObjectName(table, 'archive_pkey')} PRIMARY KEY (${col.id});
EXCEPTION WHEN invalid_table_definition OR duplicate_object THEN NULL;
END $$;

${cutoverTables}`;
}

/** The test for "this connection is cutover's own" inside a trigger (see guardSql). */
const CUTOVER_WRITER = `(current_setting('cutover.writer', true) IS NOT DISTINCT FROM 'on' OR current_setting('application_name') ~ '^cutover(-|$)')`;

/**
 * A table with derived state: cutover's status column starts as every row's derived state. A
 * repeated run finds nothing to change.
 */
function backfillSql(table: LegacyTable): string {
  const derived = derivedStatusSql(table, 'j');
  if (!derived) return '';
  return `
-- ${table.label} has no status column: cutover's own (${table.names.status}) starts as each row's state, derived from its columns.
UPDATE ${table.ref} AS j SET ${table.col.status} = ${derived} WHERE j.${table.col.status} IS DISTINCT FROM ${derived} AND j."engine" = 'LEGACY';
`;
}

/**
 * A table with derived state: whenever the team's own code (not cutover) writes a row, the
 * state cutover keeps for it is derived again from the team's columns, so the team's runner
 * and producers go on writing only what they always wrote. Its name sorts after the guard's,
 * which therefore sees a pg-boss row's change first.
 */
function derivedStateSql(table: LegacyTable): string {
  const derived = derivedStatusSql(table, 'NEW');
  if (!derived) return '';
  const trigger = indexName(table, 'state');
  const fn = `${quoteIdent(table.adapter.schema ?? 'public')}.${trigger}`;
  return `
-- The team's writes keep cutover's ${table.names.status} in step: derived from the row's own columns.
-- To remove it: DROP TRIGGER ${trigger} ON ${table.ref}; DROP FUNCTION ${fn}();
CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $state$
BEGIN
    IF NOT ${CUTOVER_WRITER} THEN
        NEW.${table.col.status} := ${derived};
    END IF;
    RETURN NEW;
END
$state$;
DROP TRIGGER IF EXISTS ${trigger} ON ${table.ref};
CREATE TRIGGER ${trigger} BEFORE INSERT OR UPDATE ON ${table.ref} FOR EACH ROW EXECUTE FUNCTION ${fn}();
`;
}

/** The guard's trigger and function names, for the SQL and for a team that removes the guard. */
export function guardNames(table: LegacyTable): { trigger: string; fn: string } {
  return { trigger: indexName(table, 'guard'), fn: `${quoteIdent(table.adapter.schema ?? 'public')}.${indexName(table, 'guard')}` };
}

/**
 * The guard (DESIGN §12): a row pg-boss owns may change status, start or finish only through
 * cutover's own connections: their application_name is \`cutover\` or \`cutover-…\` (db/pool
 * CUTOVER_APPLICATION), which a transaction pooler keeps per client, where the session setting
 * \`cutover.writer\` that older cutover releases sent as a startup option never got through;
 * that setting is still accepted, for a process of an older release beside a newer. The team's
 * runner, until its claim and stale cleanup say \`AND "engine" = 'LEGACY'\`, then fails loudly on
 * such a row instead of running a job twice or failing it under pg-boss's feet.
 */
function guardSql(table: LegacyTable): string {
  const { col } = table;
  const { trigger, fn } = guardNames(table);
  // Every column cutover manages on a pg-boss row: a runner that writes its outcome (attempts,
  // errors, the next scheduled time) without a status of its own is refused as well.
  const managed = [col.status, col.startedAt, col.completedAt, col.attempts, col.error, table.due, ...(col.failedAt ? [col.failedAt] : []), '"engine"'];
  const watched = [...new Set(managed)].map((c) => `NEW.${c} IS DISTINCT FROM OLD.${c}`).join(' OR ');
  // A delete of a pg-boss row is refused too: a runner whose success deletes the row (delayed_job)
  // would otherwise take away the row of a job pg-boss runs. cutover's own deletes (a success
  // moved to the archive, \`cutover archive\`) pass as its updates do, by the same test.
  return `-- The guard: only cutover may change or delete a row pg-boss owns. An unpatched runner
-- (no \`AND "engine" = 'LEGACY'\` in its claim, its writes or stale cleanup) gets an error naming the fix.
-- To remove it: DROP TRIGGER ${trigger} ON ${table.ref}; DROP FUNCTION ${fn}();
CREATE OR REPLACE FUNCTION ${fn}() RETURNS trigger LANGUAGE plpgsql AS $guard$
BEGIN
    IF OLD."engine" = 'PGBOSS' AND current_setting('cutover.writer', true) IS DISTINCT FROM 'on'
       AND current_setting('application_name') !~ '^cutover(-|$)' AND (TG_OP = 'DELETE' OR ${watched}) THEN
        RAISE EXCEPTION 'cutover guard: row % of ${table.label.replace(/'/g, "''")} belongs to pg-boss (engine = PGBOSS); add AND "engine" = ''LEGACY'' to this query (claim, pending count, stale cleanup, its writes)', OLD.${col.id}
            USING HINT = 'cutover init prints the filters your runner needs';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$guard$;
DROP TRIGGER IF EXISTS ${trigger} ON ${table.ref};
CREATE TRIGGER ${trigger} BEFORE UPDATE OR DELETE ON ${table.ref} FOR EACH ROW EXECUTE FUNCTION ${fn}();`;
}

/**
 * What the team's own runner must add to its queries, in its table's names: the claim and the
 * pending count take only legacy rows, the stale cleanup leaves pg-boss's running rows alone.
 */
export function runnerFilters(table: LegacyTable): string[] {
  const { col, status, ref } = table;
  if (table.state === 'derived') {
    // The team's own state predicates stay as they are; two of cutover's columns say which rows
    // are free: not pg-boss's, and not one cutover's legacy runner holds (workerId).
    const waiting = [
      ...(table.adapter.columns?.completedAt !== undefined ? [`${col.completedAt} IS NULL`] : []),
      table.failedAtMeans === 'failed-for-good' && col.failedAt ? `${col.failedAt} IS NULL` : `${col.attempts} < ${col.maxAttempts!}`,
    ].join(' AND ');
    const free = `"engine" = 'LEGACY' AND "workerId" IS NULL`;
    return [
      `select-then-run: SELECT ... FROM ${ref} WHERE ${waiting} AND ${table.due} <= now() AND ${free} ... (then run each row and write its outcome as you do now; its UPDATE or DELETE of the row: ... WHERE ${col.id} = $1 AND "engine" = 'LEGACY')`,
      `claim:           UPDATE ${ref} SET ... WHERE ${col.id} IN (SELECT ${col.id} FROM ${ref} WHERE ${waiting} AND ${table.due} <= now() AND ${free} ... FOR UPDATE SKIP LOCKED)`,
      `pending count:   SELECT count(*) FROM ${ref} WHERE ${waiting} AND ${free}`,
    ];
  }
  return [
    `claim:           SELECT ... FROM ${ref} WHERE ${col.status} = ${status.pending} AND "engine" = 'LEGACY' AND ${table.due} <= now() ... FOR UPDATE SKIP LOCKED`,
    `select-then-run: SELECT ... FROM ${ref} WHERE ${col.status} = ${status.pending} AND "engine" = 'LEGACY' AND ${table.due} <= now() ..., and its writes: UPDATE ${ref} ... WHERE ${col.id} = $1 AND "engine" = 'LEGACY'`,
    `pending count:   SELECT count(*) FROM ${ref} WHERE ${col.status} = ${status.pending} AND "engine" = 'LEGACY'`,
    `stale cleanup:   UPDATE ${ref} SET ${col.status} = ${status.failed} ... WHERE ${col.status} = ${status.running} AND "engine" = 'LEGACY' AND ...`,
  ];
}

export interface AdoptionResult {
  path: string;
  /** False when an identical adoption migration already exists (nothing was written). */
  written: boolean;
}

/** Prisma's migration folder prefix: the UTC time as YYYYMMDDHHMMSS. */
function prismaTimestamp(now: Date): string {
  return now.toISOString().replace(/[-:T]/g, '').slice(0, 14);
}

/**
 * Writes the adoption migration into the migrations directory (or to `out`), unless one with
 * the same SQL is already there: running `cutover init` twice adds nothing.
 */
export async function writeAdoptionMigration(table: LegacyTable, options: { migrationsDir: string; out?: string; now?: Date }): Promise<AdoptionResult> {
  // Columns an adoption migration already added are no longer missing, but its text names them.
  const sql = await adoptionSql(table, options.out ? new Map() : await adoptedColumns(options.migrationsDir));
  if (!options.out) {
    const existing = await readdir(options.migrationsDir, { withFileTypes: true }).catch(() => []);
    for (const entry of existing) {
      if (!entry.isDirectory() || !entry.name.endsWith(ADOPT_SUFFIX)) continue;
      const path = join(options.migrationsDir, entry.name, 'migration.sql');
      if ((await readFile(path, 'utf8').catch(() => undefined)) === sql) return { path, written: false };
    }
  }
  const path = options.out ?? join(options.migrationsDir, `${prismaTimestamp(options.now ?? new Date())}${ADOPT_SUFFIX}`, 'migration.sql');
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, sql, { flag: options.out ? 'w' : 'wx' });
  return { path, written: true };
}

/**
 * The generic table: cutover's built-in migrations. An adopted table: only the team's own
 * migrations directory, where `cutover init` wrote the whole cutover schema for it, so the
 * team's history alone (applied by this or by `prisma migrate deploy`) describes the database.
 * Before `cutover init` has written there, the team's own migrations alone.
 */
export async function migrationDirs(project: ProjectConfig): Promise<string[]> {
  if (!project.legacy) return [...builtinMigrationDirs];
  const found = await readdir(project.migrationsDir).catch(() => undefined);
  if (!found?.some((name) => name.endsWith(ADOPT_SUFFIX))) {
    // Before `cutover init`, the team's own migrations (the table itself, a column init needs)
    // still go through the applier; cutover's tables come with the adoption migration.
    if (found?.length) return [project.migrationsDir];
    throw new UsageError(`${project.migrationsDir} holds no cutover adoption migration: run \`cutover init\` first`);
  }
  return [project.migrationsDir, cutoverTablesMigrationsDir];
}

const CUTOVER_FIELDS = new Set(['engine', 'pgbossJobId', 'routeReason', 'bucket', 'workerId', 'heartbeatAt', 'runAfter']);

/**
 * The bookkeeping columns an adoption adds beyond cutover's own: those an applied adoption
 * migration added (`added`, in its order), then those the table still lacks.
 */
function addedColumns(table: LegacyTable, added: ReadonlyMap<string, string>): Map<string, string> {
  return new Map([...[...added].filter(([column]) => !CUTOVER_FIELDS.has(column)), ...table.missing]);
}

/**
 * The columns the adoption migrations already written for the table add, by name, with their
 * SQL definitions: once they are applied the table has them, and `table.missing` no longer
 * names them, but the team's Prisma model still needs every one.
 */
export async function adoptedColumns(migrationsDir: string): Promise<Map<string, string>> {
  const added = new Map<string, string>();
  const entries = await readdir(migrationsDir, { withFileTypes: true }).catch(() => []);
  for (const entry of entries.filter((e) => e.isDirectory() && e.name.endsWith(ADOPT_SUFFIX)).sort((a, b) => a.name.localeCompare(b.name))) {
    const sql = await readFile(join(migrationsDir, entry.name, 'migration.sql'), 'utf8').catch(() => '');
    for (const match of sql.matchAll(/ADD COLUMN IF NOT EXISTS "((?:[^"]|"")+)" ([^,;\n]+)/g)) added.set(match[1]!.replace(/""/g, '"'), match[2]!.trim());
  }
  return added;
}

/** Prisma's scalar for a column cutover adds, by its SQL definition. */
function prismaType(definition: string): string {
  const nullable = !/NOT NULL/i.test(definition);
  const scalar = /^TIMESTAMPTZ/i.test(definition)
    ? `DateTime${nullable ? '?' : ''} @db.Timestamptz(3)`
    : /^INTEGER/i.test(definition)
      ? `Int${nullable ? '?' : ''}`
      : /^uuid/i.test(definition)
        ? `String${nullable ? '?' : ''} @db.Uuid`
        : /^bigint/i.test(definition)
          ? `BigInt${nullable ? '?' : ''}`
          : `String${nullable ? '?' : ''}`;
  const text = /DEFAULT '((?:[^']|'')*)'/i.exec(definition)?.[1]?.replace(/''/g, "'");
  const fallback = /DEFAULT CURRENT_TIMESTAMP/i.test(definition) ? ' @default(now())' : /DEFAULT 0/i.test(definition) ? ' @default(0)' : text !== undefined ? ` @default(${JSON.stringify(text)})` : '';
  return `${scalar}${fallback}`;
}

/**
 * The fields, indexes and enum to add to the team's Prisma model of the adopted table, so that
 * their next `prisma migrate dev` neither drops cutover's columns nor reports drift. Field
 * names are the column names. The backlog index is partial, which a Prisma schema cannot
 * state: it is listed as a comment, and Prisma leaves an index it does not know about alone
 * only when the team keeps it in a migration of its own (the adoption migration is one).
 */
export function prismaFields(table: LegacyTable, added: ReadonlyMap<string, string> = new Map()): string {
  const { names } = table;
  const name = (what: string) => indexName(table, what).slice(1, -1);
  const typeColumn = typeof table.adapter.jobType === 'string' ? undefined : table.adapter.jobType.column;
  const due = table.names.runAt ?? 'runAfter';
  const fields: [string, string][] = [
    ['engine', `JobEngine @default(LEGACY)`],
    ['pgbossJobId', `String? @unique(map: "${name('pgbossJobId_key')}") @db.Uuid`],
    ['routeReason', 'String?'],
    ['bucket', 'Int?'],
    ['workerId', 'String?'],
    ['heartbeatAt', 'DateTime? @db.Timestamptz(3)'],
    ['runAfter', 'DateTime @default(now()) @db.Timestamptz(3)'],
    ...[...addedColumns(table, added)].map(([column, definition]): [string, string] => [column, prismaType(definition)]),
  ];
  const width = Math.max(...fields.map(([field]) => field.length));
  return [
    `// cutover: add to model ${table.adapter.table} (written by \`cutover init --prisma\`)`,
    ...fields.map(([field, type]) => `  ${field.padEnd(width)} ${type}`),
    '',
    `  @@index([engine, ${names.status}, ${due}], map: "${name('claim_idx')}")`,
    ...(names.originalJobId ? [`  @@index([${names.originalJobId}], map: "${name('originalJobId_idx')}")`] : []),
    `  @@index([${typeColumn ? `${typeColumn}, ` : ''}${names.createdAt}], map: "${name('type_createdAt_idx')}")`,
    `  // ${name('backlog_idx')}: a partial index (waiting legacy rows only), kept by the adoption migration`,
    '',
    '// cutover: add beside the model',
    'enum JobEngine {',
    '  LEGACY',
    '  PGBOSS',
    '}',
  ].join('\n');
}
