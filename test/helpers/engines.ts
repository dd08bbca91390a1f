import type { PgBoss } from 'pg-boss';
import type { Pool } from '../../src/db/pool.js';
import type { JobRegistry } from '../../src/jobs/registry.js';
import type { LegacyTable } from '../../src/table/table.js';
import { createLogger } from '../../src/support/log.js';
import { startBoss } from '../../src/pgboss/boss.js';
import { BossWorker } from '../../src/pgboss/worker.js';
import { ensureQueues } from '../../src/pgboss/queues.js';
import { changeFlag, FlagCache } from '../../src/state/flags.js';
import { RolloutManager } from '../../src/rollout/manager.js';

export const quietLog = createLogger({ level: 'silent' });

export interface Producer {
  boss: PgBoss;
  flags: FlagCache;
  manager: RolloutManager;
  close(): Promise<void>;
}

/** A producer as an application would have one: pg-boss client, flag cache, RolloutManager. */
export async function startProducer(url: string, pool: Pool, registry: JobRegistry, options: { ttlMs?: number; table?: LegacyTable } = {}): Promise<Producer> {
  const boss = await startBoss({ databaseUrl: url, log: quietLog, max: 4 });
  await ensureQueues(boss, registry, quietLog);
  const flags = new FlagCache({ pool, databaseUrl: url, log: quietLog, ttlMs: options.ttlMs ?? 5000 });
  await flags.listen();
  const manager = new RolloutManager({ pool, boss, registry, flags, log: quietLog, ...(options.table ? { table: options.table } : {}) });
  return {
    boss,
    flags,
    manager,
    async close() {
      await flags.close();
      await boss.stop({ graceful: false, close: true });
    },
  };
}

export async function setPercent(pool: Pool, percent: number, jobType = '*'): Promise<void> {
  await changeFlag(pool, { jobType, basisPoints: Math.round(percent * 100) }, { actor: 'test', action: 'flag.set' });
}

export async function bossState(pool: Pool, name: string, id: string): Promise<{ state: string; retry_count: number } | undefined> {
  const { rows } = await pool.query<{ state: string; retry_count: number }>(`SELECT state, retry_count FROM pgboss.job WHERE name = $1 AND id = $2`, [name, id]);
  return rows[0];
}

/**
 * An in-process pg-boss worker that supervises every second, so expiry happens soon; stopped
 * (gracefully) after `run`, whatever it did.
 */
export async function withBossWorker<T>(
  target: { url: string; pool: Pool; registry: JobRegistry },
  run: (worker: BossWorker) => Promise<T>,
  types?: readonly string[],
): Promise<T> {
  const boss = await startBoss({ databaseUrl: target.url, log: quietLog, role: 'worker', superviseIntervalSeconds: 1 });
  const worker = new BossWorker({ boss, pool: target.pool, registry: target.registry, log: quietLog, pollingIntervalSeconds: 0.5, ...(types ? { types } : {}) });
  await worker.start();
  try {
    return await run(worker);
  } finally {
    await worker.stop(5000);
  }
}
