import { RuntimeFailure, UsageError } from '../support/errors.js';
import type { Queryable } from '../db/pool.js';
import { isPermissionDenied, isUndefinedTable } from '../support/pg-errors.js';
import { PGBOSS_SCHEMA } from '../pgboss-schema/schema.js';
import { pgbossInstalled as pgbossInstalledSql, pgbossRelations } from '../pgboss-schema/reads.js';

/**
 * Is this database ready for a command: cutover's migrations applied, pg-boss installed, and
 * the rights the command needs? Asked before a command writes anything, so that pointing
 * cutover at the wrong database (or the right one before `cutover db migrate`) changes nothing
 * and says what to do, instead of failing halfway with `relation "RolloutFlag" does not exist`.
 */

/**
 * cutover's own tables: migration 0003_cutover_tables (or the adoption migration `cutover
 * init` writes), then prisma/cutover-migrations.
 */
const LATER_TABLES: readonly string[] = ['RolloutFinal', 'WorkerHeartbeat', 'NotificationCursor', 'NotificationDelivery'];
export const CUTOVER_TABLES = ['RolloutFlag', 'RolloutEvent', 'RolloutPlanRun', 'ReconcileRun', 'MigrationQuarantine', ...LATER_TABLES] as const;

/** pg-boss's schema in every cutover database: pgboss-schema's, re-exported where callers have always found it. */
export { PGBOSS_SCHEMA };

/** A database that lacks what cutover's migrations create: exit 2, nothing was written. */
export class SchemaNotReadyError extends UsageError {}

/** The connecting role may not do what the command needs: exit 3, nothing was written. */
export class PermissionDeniedError extends RuntimeFailure {}

/** The legacy table as the schema check needs it: where it is and the columns cutover adds to it. */
export interface LegacyTableTarget {
  /** Schema-qualified and quoted: `"public"."Job"`. */
  ref: string;
  /** For messages: `public.Job`. */
  label: string;
  /** cutover's columns the table must have (engine, pgbossJobId, …). */
  columns: readonly string[];
  /** True for a team's own table (adopted with `cutover init`), false for cutover's generic one. */
  adopted: boolean;
}

interface SchemaRow {
  missing_tables: string[];
  table_exists: boolean;
  table_columns: string[];
}

/**
 * Throws SchemaNotReadyError, in one line saying what to run, unless cutover's tables exist and
 * the legacy table has cutover's columns. Reads only the catalog: any role may run it.
 */
export async function assertCutoverSchema(db: Queryable, table: LegacyTableTarget): Promise<void> {
  const { rows } = await db.query<SchemaRow>(
    `SELECT ARRAY(SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(quote_ident(t)) IS NULL) AS missing_tables,
            to_regclass($2) IS NOT NULL AS table_exists,
            ARRAY(SELECT a.attname::text FROM pg_attribute a
                   WHERE a.attrelid = to_regclass($2) AND a.attnum > 0 AND NOT a.attisdropped) AS table_columns`,
    [CUTOVER_TABLES, table.ref],
  );
  const row = rows[0]!;
  const migrate = table.adopted ? 'run `cutover init`, then `cutover db migrate`' : 'run `cutover db migrate` first';
  if (row.missing_tables.length === CUTOVER_TABLES.length && !row.table_exists) {
    throw new SchemaNotReadyError(`this database has none of cutover's tables (no ${table.label}, no RolloutFlag): ${migrate}; nothing was changed`);
  }
  if (!row.table_exists) {
    throw new SchemaNotReadyError(
      table.adopted
        ? `table ${table.label} (legacy.table in your config) does not exist in this database; nothing was changed`
        : `table ${table.label} does not exist in this database: ${migrate} (or adopt your own table: RUNBOOK.md §7); nothing was changed`,
    );
  }
  const present = new Set(row.table_columns);
  const missingColumns = table.columns.filter((column) => !present.has(column));
  if (missingColumns.length) {
    throw new SchemaNotReadyError(`${table.label} lacks cutover's columns (${missingColumns.join(', ')}): ${migrate}; nothing was changed`);
  }
  if (row.missing_tables.length) {
    // Tables of a newer cutover than the one that adopted the table: `db migrate` alone adds them.
    const upgrade = row.missing_tables.every((name) => LATER_TABLES.includes(name));
    throw new SchemaNotReadyError(`this database lacks cutover's tables ${row.missing_tables.join(', ')}: ${upgrade ? 'run `cutover db migrate`' : migrate}; nothing was changed`);
  }
}

/** Whether pg-boss has installed its schema here (it does so the first time pg-boss starts with the rights to). */
export async function pgbossInstalled(db: Queryable): Promise<boolean> {
  const { rows } = await db.query<{ installed: boolean }>(pgbossInstalledSql, [...pgbossRelations]);
  return rows[0]?.installed ?? false;
}

/** True for Postgres's "relation pgboss.… does not exist". */
export function isMissingPgboss(error: unknown): boolean {
  return isUndefinedTable(error) && /relation "pgboss\./.test((error as Error).message);
}

/** Where callers have always found it; the rule itself is support's. */
export { isPermissionDenied };

/** Who a command runs as, and what it is, for messages that say what to grant. */
export interface Actor {
  /** The database role the command connected as. */
  role: string;
  /** As typed: `rollback`, `rollout set`. */
  command: string;
  /** Whose grants the command needs (RUNBOOK.md §8), in words: "the operator's grants (…)". */
  needs: string;
}

/**
 * A permission error as one line an operator can act on: which role, what it may not do, and
 * whose grants the command needs. The database refused the first statement that needed the
 * right, and that statement's transaction rolled back: nothing was written by it.
 */
export function permissionDenied(error: unknown, actor: Actor): PermissionDeniedError {
  const reason = (error as Error).message.split('\n')[0] ?? 'permission denied';
  return new PermissionDeniedError(
    `${reason}: role "${actor.role}" may not run \`cutover ${actor.command}\`; it needs ${actor.needs}, RUNBOOK.md §8; nothing was changed`,
    { cause: error },
  );
}

/** pg-boss is needed but absent: the first pg-boss worker (or an operator command that starts pg-boss) installs it. */
export function pgbossMissing(command: string, error?: unknown): SchemaNotReadyError {
  return new SchemaNotReadyError(
    `pg-boss is not installed in this database yet (no ${PGBOSS_SCHEMA}.job): no pg-boss worker has run here. ` +
      `Start one once (\`cutover worker --engine pgboss\`, as the database owner when roles are split: RUNBOOK.md §8), then run \`cutover ${command}\` again; nothing was changed`,
    error === undefined ? undefined : { cause: error },
  );
}
