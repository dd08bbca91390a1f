import type { PgBoss } from 'pg-boss';
import type { ProjectConfig } from '../config/file.js';
import { CutoverError } from '../support/errors.js';
import { databaseError } from '../support/pg-errors.js';
import { createPool, type Pool } from '../db/pool.js';
import { assertCutoverSchema, isMissingPgboss, isPermissionDenied, permissionDenied, pgbossInstalled, pgbossMissing, PermissionDeniedError } from '../state/schema-check.js';
import { loadRegistry, type JobRegistry } from '../jobs/registry.js';
import type { Logger } from '../support/log.js';
import { bindLegacyTable, CUTOVER_COLUMNS, GENERIC_TABLE, type LegacyTable } from '../table/table.js';
import { startBoss, type BossOptions } from '../pgboss/boss.js';
import type { OpsContext } from '../table/context.js';
import { componentOf, grantsOf } from '../adopt/roles.js';
import { FlagCache } from '../state/flags.js';
import { RolloutManager } from '../rollout/manager.js';
import { actorOf, type RuntimeContext } from './context.js';

export interface Services {
  pool: Pool;
  registry: JobRegistry;
  /** The legacy table: the config's adapter checked against the catalog, or the generic table. */
  table: LegacyTable;
  boss(): Promise<PgBoss>;
  manager(): Promise<RolloutManager>;
  /** What operator commands take; `actor` defaults to the OS user. */
  ops(actor?: string): Promise<OpsContext>;
}

/** The config's adapter checked against the catalog, or the generic table when there is none. */
export async function legacyTable(pool: Pool, project: ProjectConfig): Promise<LegacyTable> {
  return project.legacy ? bindLegacyTable(pool, project.legacy) : GENERIC_TABLE;
}

/**
 * The legacy table, once the database is known to have cutover's schema: every command asks
 * this before it writes anything, so a database without `cutover db migrate` changes nothing
 * and the message says to run it (not `relation "RolloutFlag" does not exist`, and not after
 * pg-boss's schema and queues were created).
 */
export async function readyTable(pool: Pool, project: ProjectConfig): Promise<LegacyTable> {
  const generic = !project.legacy;
  if (generic) await assertCutoverSchema(pool, { ref: GENERIC_TABLE.ref, label: GENERIC_TABLE.label, columns: CUTOVER_COLUMNS, adopted: false });
  const table = await legacyTable(pool, project);
  if (!generic) await assertCutoverSchema(pool, { ref: table.ref, label: table.label, columns: CUTOVER_COLUMNS, adopted: true });
  return table;
}

/** The role a connection string logs in as, else the server's word for it. */
async function connectedRole(pool: Pool, url: string): Promise<string> {
  try {
    const user = decodeURIComponent(new URL(url).username);
    if (user) return user;
  } catch {
    // Not a URL (a libpq keyword string): ask the server.
  }
  const { rows } = await pool.query<{ role: string }>('SELECT current_user AS role').catch(() => ({ rows: [] as { role: string }[] }));
  return rows[0]?.role ?? 'the connecting role';
}

/**
 * A failure the operator can act on, in one line: a command that reads pg-boss before any
 * pg-boss ran here, or a role without the rights the command needs. Errors of our own pass as
 * they are: they already say what to do.
 */
export async function explainFailure(error: unknown, where: { pool: Pool; url: string; command: string }): Promise<unknown> {
  if (error instanceof CutoverError) return error;
  const cause = databaseError(error);
  if (!cause) return error;
  if (isMissingPgboss(cause) && !(await pgbossInstalled(where.pool).catch(() => true))) return pgbossMissing(where.command, error);
  if (isPermissionDenied(cause)) {
    const role = await connectedRole(where.pool, where.url);
    return permissionDenied(cause, { role, command: where.command, needs: grantsOf(componentOf(where.command)) });
  }
  return error;
}

/**
 * pg-boss, started: installed first if this database has none yet (pg-boss does that on start),
 * which the log says, since a command then changed more than the operator may expect. A role
 * without the right to install it is told who can.
 */
export async function openBoss(
  pool: Pool,
  options: BossOptions & { command: string },
): Promise<PgBoss> {
  const installed = await pgbossInstalled(pool);
  try {
    const boss = await startBoss(options);
    if (!installed) options.log.info({ schema: 'pgboss' }, `pg-boss was not installed in this database: installed its schema 'pgboss' (once, for every process from now on)`);
    return boss;
  } catch (error) {
    const cause = databaseError(error);
    // DDL on pg-boss's tables ("must be owner of table job"): a newer pg-boss upgrading its schema.
    if (installed && isPermissionDenied(cause) && /must be owner/.test((cause as Error).message)) {
      const role = await connectedRole(pool, options.databaseUrl);
      throw new PermissionDeniedError(
        `pg-boss wants to upgrade its schema, which only its owner may do, and role "${role}" is not it (${(cause as Error).message}): ` +
          'start the new pg-boss once as the database owner, then apply `cutover init --roles` again (RUNBOOK.md §8); nothing was changed',
        { cause: error },
      );
    }
    if (!installed && isPermissionDenied(cause)) {
      const role = await connectedRole(pool, options.databaseUrl);
      throw new PermissionDeniedError(
        `pg-boss is not installed in this database, and role "${role}" may not install it (${(cause as Error).message}): ` +
          'start pg-boss once as the database owner (RUNBOOK.md §8), then run this again; nothing was changed',
        { cause: error },
      );
    }
    throw await explainFailure(error, { pool, url: options.databaseUrl, command: options.command });
  }
}

/**
 * Where the locks of long commands (migrate, rollback, a plan's controller) are held: the
 * direct URL when one is configured, so they are session locks that a kill -9 releases at
 * once; else the one URL, where they are leases if it is a transaction pooler's (state/leases.ts).
 */
export function lockUrl(context: Pick<RuntimeContext, 'config' | 'db'>): string {
  return context.config.directUrl ?? context.db.url;
}

/** The long-lived pieces a command needs, opened lazily and always closed. */
export async function withServices<T>(
  context: RuntimeContext,
  options: { registry?: string; poolMax?: number },
  run: (services: Services) => Promise<T>,
): Promise<T> {
  const registry = await loadRegistry(options.registry ?? context.project.registry);
  const pool = createPool(context.db.url, { max: options.poolMax ?? 4 });
  let table: LegacyTable;
  try {
    table = await readyTable(pool, context.project);
  } catch (error) {
    const explained = await explainFailure(error, { pool, url: context.db.url, command: context.command });
    await pool.end();
    throw explained;
  }
  let boss: Promise<PgBoss> | undefined;
  let flags: FlagCache | undefined;
  let manager: RolloutManager | undefined;
  const log: Logger = context.log;
  const services: Services = {
    pool,
    registry,
    table,
    boss: () => (boss ??= openBoss(pool, { databaseUrl: context.db.url, log, max: 4, command: context.command })),
    async ops(actor) {
      // The URL locks are held on (OpsContext.databaseUrl): the session when there is one.
      return { pool, databaseUrl: lockUrl(context), boss: await services.boss(), registry, table, log, actor: actorOf({ actor }) };
    },
    async manager() {
      flags ??= new FlagCache({ pool, log, ttlMs: context.config.flagTtlMs });
      manager ??= new RolloutManager({ pool, boss: await services.boss(), registry, table, flags, log, env: context.config.envOverride });
      return manager;
    },
  };
  try {
    return await run(services);
  } catch (error) {
    throw await explainFailure(error, { pool, url: context.db.url, command: context.command });
  } finally {
    await flags?.close();
    if (boss) await (await boss.catch(() => undefined))?.stop({ graceful: false, close: true }).catch(() => undefined);
    await pool.end();
  }
}
