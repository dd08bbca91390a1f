// Producers and a pg-boss worker behind a real transaction pooler (PgBouncer 1.18, pool_mode =
// transaction, 4 server connections): at 100 % every job goes to pg-boss (no `fallback` from a
// prepared statement the pooler lost), and the worker runs every one of them.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createPool, type Pool } from '../../src/db/pool.js';
import { loadRegistry, type JobRegistry } from '../../src/jobs/registry.js';
import { startBoss } from '../../src/pgboss/boss.js';
import { ensureQueues } from '../../src/pgboss/queues.js';
import { RolloutManager } from '../../src/rollout/manager.js';
import { FlagCache } from '../../src/state/flags.js';
import type { TestDatabase } from '../helpers/database.js';
import { quietLog, setPercent, withBossWorker } from '../helpers/engines.js';
import { fixtureRegistry } from '../helpers/jobs.js';
import { usePooledDatabase } from '../helpers/fixture.js';
import type { PgBouncer } from '../helpers/pgbouncer.js';
import { killStragglers, startCli } from '../helpers/process.js';
import { pollUntil } from '../helpers/wait.js';

const PRODUCERS = 3;
const JOBS = 240;

const pooled = usePooledDatabase();
let database: TestDatabase;
let bouncer: PgBouncer;
let direct: Pool;
let registry: JobRegistry;
beforeAll(async () => {
  ({ database, bouncer, direct } = pooled);
  registry = await loadRegistry(fixtureRegistry);
});
afterEach(killStragglers);

describe('behind PgBouncer in transaction mode', () => {
  it('several producers enqueue at 100 % with no fallback, and a pooled worker runs every job', async () => {
    const pooledUrl = bouncer.urlFor(database.url);
    await setPercent(direct, 100);
    const producers = await Promise.all(
      Array.from({ length: PRODUCERS }, async () => {
        const pool = createPool(pooledUrl, { max: 4, applicationName: 'cutover-test-producer' });
        const boss = await startBoss({ databaseUrl: pooledUrl, log: quietLog, max: 4 });
        await ensureQueues(boss, registry, quietLog);
        // The flag cache's LISTEN needs a session: the direct URL, as DIRECT_URL gives it.
        const flags = new FlagCache({ pool, databaseUrl: database.url, log: quietLog, ttlMs: 5000 });
        const manager = new RolloutManager({ pool, boss, registry, flags, log: quietLog });
        return { pool, boss, flags, manager };
      }),
    );
    try {
      // Each producer sends its share as parallel single enqueues and batches, so statements of
      // one producer's clients land on server connections another producer's used.
      const share = JOBS / PRODUCERS;
      const results = (
        await Promise.all(
          producers.map(async ({ manager }, p) => {
            const singles = await Promise.all(Array.from({ length: share / 2 }, (_, i) => manager.enqueue('test.noop', { p, i })));
            const batches = await Promise.all(
              Array.from({ length: share / 8 }, (_, b) => manager.enqueueMany('test.noop', Array.from({ length: 4 }, (_, i) => ({ payload: { p, b, i } })))),
            );
            return [...singles, ...batches.flat()];
          }),
        )
      ).flat();
      expect(results).toHaveLength(JOBS);
      expect(results.filter((r) => r.reason === 'fallback')).toEqual([]);
      expect(producers.reduce((sum, { manager }) => sum + manager.fallbackCount, 0)).toBe(0);
      const { rows: engines } = await direct.query<{ engine: string; reason: string; n: number }>(
        `SELECT engine, "routeReason" AS reason, count(*)::int AS n FROM "Job" GROUP BY 1, 2`,
      );
      expect(engines).toEqual([{ engine: 'PGBOSS', reason: 'bucket', n: JOBS }]);

      const workerPool = createPool(pooledUrl, { max: 6, applicationName: 'cutover-pgboss-worker' });
      try {
        await withBossWorker({ url: pooledUrl, pool: workerPool, registry }, () =>
          pollUntil(
            'every job to complete',
            async () => Number((await direct.query<{ n: string }>(`SELECT count(*) AS n FROM "Job" WHERE status = 'COMPLETED'`)).rows[0]!.n) === JOBS,
            { timeoutMs: 60_000 },
          ),
        );
      } finally {
        await workerPool.end();
      }
      const { rows: boss } = await direct.query<{ name: string; state: string; n: number }>(`SELECT name, state, count(*)::int AS n FROM pgboss.job GROUP BY 1, 2`);
      // Nothing dead-lettered unrun, nothing failed: every pg-boss job completed once.
      expect(boss).toEqual([{ name: 'test.noop', state: 'completed', n: JOBS }]);
    } finally {
      await Promise.all(
        producers.map(async ({ pool, boss, flags }) => {
          await flags.close();
          await boss.stop({ graceful: false, close: true });
          await pool.end();
        }),
      );
    }
  });

  it('the CLI worker on the pooled URL alone runs every job: none failed or dead-lettered unrun', async () => {
    const pooledUrl = bouncer.urlFor(database.url);
    await direct.query(`DELETE FROM "Job"`);
    await direct.query(`DELETE FROM pgboss.job`);
    const pool = createPool(pooledUrl, { max: 4, applicationName: 'cutover-test-producer' });
    const boss = await startBoss({ databaseUrl: pooledUrl, log: quietLog, max: 4 });
    const flags = new FlagCache({ pool, databaseUrl: database.url, log: quietLog, ttlMs: 5000 });
    try {
      const manager = new RolloutManager({ pool, boss, registry, flags, log: quietLog });
      const sent = await manager.enqueueMany('test.noop', Array.from({ length: JOBS }, (_, i) => ({ payload: { i } })));
      expect(sent.filter((r) => r.engine !== 'PGBOSS')).toEqual([]);
    } finally {
      await flags.close();
      await boss.stop({ graceful: false, close: true });
      await pool.end();
    }
    const worker = startCli(['worker', '--engine', 'pgboss', '--concurrency', '8', '--registry', fixtureRegistry, '--database-url', pooledUrl]);
    await pollUntil(
      'every job to complete',
      async () => Number((await direct.query<{ n: string }>(`SELECT count(*) AS n FROM "Job" WHERE status = 'COMPLETED'`)).rows[0]!.n) === JOBS,
      { timeoutMs: 90_000, intervalMs: 250 },
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}\nworker stderr:\n${worker.stderr()}`);
    });
    worker.kill('SIGTERM');
    expect((await worker.exited).code, worker.stderr()).toBe(0);
    const { rows } = await direct.query<{ name: string; state: string; n: number }>(`SELECT name, state, count(*)::int AS n FROM pgboss.job GROUP BY 1, 2`);
    expect(rows).toEqual([{ name: 'test.noop', state: 'completed', n: JOBS }]);
  }, 150_000);
});
