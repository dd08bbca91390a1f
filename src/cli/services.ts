import type { PgBoss } from 'pg-boss';
import type { ProjectConfig } from '../config-file.js';
import { createPool, type Pool } from '../db/pool.js';
import { loadRegistry, type JobRegistry } from '../jobs/registry.js';
import { bindLegacyTable, GENERIC_TABLE, type LegacyTable } from '../table/table.js';
import { startBoss } from '../pgboss/boss.js';
import type { OpsContext } from '../ops/context.js';
import { defaultActor } from '../db/audit.js';
import { FlagCache } from '../rollout/flags.js';
import { RolloutManager } from '../rollout/manager.js';
import type { CommandContext } from './context.js';

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

/** The long-lived pieces a command needs, opened lazily and always closed. */
export async function withServices<T>(
  context: CommandContext,
  options: { registry?: string; poolMax?: number },
  run: (services: Services) => Promise<T>,
): Promise<T> {
  const registry = await loadRegistry(options.registry ?? context.project.registry);
  const pool = createPool(context.db.url, { max: options.poolMax ?? 4 });
  let table: LegacyTable;
  try {
    table = await legacyTable(pool, context.project);
  } catch (error) {
    await pool.end();
    throw error;
  }
  let boss: Promise<PgBoss> | undefined;
  let flags: FlagCache | undefined;
  let manager: RolloutManager | undefined;
  const services: Services = {
    pool,
    registry,
    table,
    boss: () => (boss ??= startBoss({ databaseUrl: context.db.url, log: context.log, max: 4 })),
    async ops(actor) {
      return { pool, databaseUrl: context.db.url, boss: await services.boss(), registry, table, log: context.log, actor: actor ?? defaultActor() };
    },
    async manager() {
      flags ??= new FlagCache({ pool, log: context.log, ttlMs: context.config.flagTtlMs });
      manager ??= new RolloutManager({ pool, boss: await services.boss(), registry, table, flags, log: context.log, env: context.config.envOverride });
      return manager;
    },
  };
  try {
    return await run(services);
  } finally {
    await flags?.close();
    if (boss) await (await boss.catch(() => undefined))?.stop({ graceful: false, close: true }).catch(() => undefined);
    await pool.end();
  }
}
