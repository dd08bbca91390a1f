import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { createPrisma, type PrismaClient } from '../../src/db/prisma.js';
import { defineJob } from '../../src/jobs/define.js';
import { createRegistry, type JobRegistry } from '../../src/jobs/registry.js';
import { FlagCache, changeFlag } from '../../src/state/flags.js';
import { RolloutManager } from '../../src/rollout/manager.js';
import { z } from 'zod';
import type { TestDatabase } from '../helpers/database.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { quietLog, setPercent, type Producer } from '../helpers/engines.js';
import { countWhere, fixtureRegistry, jobRows } from '../helpers/jobs.js';
import { runCliInProcess } from '../helpers/cli.js';
import { startCli } from '../helpers/process.js';
import { pollUntil } from '../helpers/wait.js';

const fixture = useEngineFixture({});
let database: TestDatabase;
let pool: Pool;
let registry: JobRegistry;
let producer: Producer;
beforeEach(() => ({ database, pool, registry, producer } = fixture));

async function pgbossJobs(name: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM pgboss.job WHERE name = $1`, [name]);
  return Number(rows[0]?.n);
}

describe('transactional dual-write', () => {
  let prisma: PrismaClient;

  beforeEach(() => {
    prisma = createPrisma(database.url);
  });
  afterEach(async () => prisma.$disconnect());

  it('writes the row and the pg-boss job with the same id, routed by the flag', async () => {
    await setPercent(pool, 100);
    const result = await producer.manager.enqueue('test.noop', {}, { priority: 7 });
    expect(result).toMatchObject({ engine: 'PGBOSS', reason: 'bucket' });
    expect((await jobRows(pool, 'id = $1', [result.id]))[0]).toMatchObject({ engine: 'PGBOSS', status: 'PENDING', routeReason: 'bucket', maxAttempts: 3 });
    const { rows } = await pool.query(`SELECT priority, state FROM pgboss.job WHERE name = 'test.noop' AND id = $1`, [result.id]);
    expect(rows).toEqual([{ priority: 7000, state: 'created' }]);

    const status = JSON.parse((await runCliInProcess(['status', '--json', '--registry', fixtureRegistry, '--database-url', database.url])).stdout);
    expect(status.jobs).toEqual([{ type: 'test.noop', engine: 'PGBOSS', status: 'PENDING', count: 1 }]);
    expect(status.queues).toEqual([{ queue: 'test.noop', state: 'created', count: 1 }]);
    expect(status.flags).toMatchObject([{ jobType: '*', percent: 100, killSwitch: false }]);
  });

  it('joins the caller\'s Prisma transaction: a rollback removes both the row and the pg-boss job', async () => {
    await setPercent(pool, 100);
    let id: string | undefined;
    await expect(
      prisma.$transaction(async (tx) => {
        await tx.demoDelivery.create({ data: { jobId: 'business-write', engine: 'app' } });
        id = (await producer.manager.enqueue('test.noop', {}, { tx })).id;
        throw new Error('the business logic failed after enqueue');
      }),
    ).rejects.toThrow('the business logic failed');
    expect(id).toBeDefined();
    expect(await countWhere(pool, 'TRUE')).toBe(0);
    expect(await pgbossJobs('test.noop')).toBe(0);
    expect(await prisma.demoDelivery.count()).toBe(0);

    await prisma.$transaction(async (tx) => {
      await tx.demoDelivery.create({ data: { jobId: 'business-write', engine: 'app' } });
      await producer.manager.enqueueMany('test.noop', [{ payload: {} }, { payload: {} }], { tx });
    });
    expect(await countWhere(pool, `engine = 'PGBOSS'`)).toBe(2);
    expect(await pgbossJobs('test.noop')).toBe(2);
    expect(await prisma.demoDelivery.count()).toBe(1);
  });

  it('falls back to exactly one legacy row when pg-boss refuses the job, and with fallback off writes nothing', async () => {
    const extra = defineJob({ name: 'test.no-queue', schema: z.object({}), async handler() { return null; } });
    const withMissingQueue = createRegistry([...registry.names().map((n) => registry.require(n)), extra]);
    const flags = new FlagCache({ pool });
    const manager = new RolloutManager({ pool, boss: producer.boss, registry: withMissingQueue, flags, log: quietLog });
    await setPercent(pool, 100);

    const result = await manager.enqueue('test.no-queue', {});
    expect(result).toMatchObject({ engine: 'LEGACY', reason: 'fallback' });
    expect(await jobRows(pool)).toMatchObject([{ id: result.id, engine: 'LEGACY', routeReason: 'fallback' }]);
    expect(manager.fallbackCount).toBe(1);

    await changeFlag(pool, { jobType: '*', fallbackToLegacy: false }, { actor: 'test', action: 'flag.set' });
    flags.invalidate();
    await expect(manager.enqueue('test.no-queue', {})).rejects.toThrow(/Queue test\.no-queue does not exist/);
    expect(await countWhere(pool, 'TRUE')).toBe(1);
  });

  it('validates before writing: an invalid payload or an unknown type writes nothing', async () => {
    await setPercent(pool, 50);
    await expect(producer.manager.enqueueMany('test.record', [{ payload: { tag: 'ok' } }, { payload: { tag: 5 } }])).rejects.toThrow(/invalid payload for test.record/);
    await expect(producer.manager.enqueue('test.nope', {})).rejects.toThrow(/unknown job type 'test.nope'/);
    expect(await countWhere(pool, 'TRUE')).toBe(0);
  });
});

describe('flags and kill switch', () => {
  it('routes every process to legacy after rollout kill: at once when listening, within one TTL otherwise', async () => {
    // A listening cache whose TTL is far longer than the test: only the notice can refresh it.
    const listening = new FlagCache({ pool, databaseUrl: database.url, ttlMs: 600_000 });
    await listening.listen();
    // A cache without LISTEN, on a clock the test moves: it must hold its flags for one TTL, then reload.
    const ttlMs = 5000;
    let now = 1_000_000;
    const ttlOnly = new FlagCache({ pool, ttlMs, now: () => now });
    const [notified, bounded] = [listening, ttlOnly].map((flags) => new RolloutManager({ pool, boss: producer.boss, registry, flags, log: quietLog }));
    await setPercent(pool, 100);
    for (const manager of [notified!, bounded!]) expect((await manager.enqueue('test.noop', {})).engine).toBe('PGBOSS');

    const kill = await runCliInProcess(['rollout', 'kill', '--type', 'test.noop', '--actor', 'alice', '--reason', 'incident 42', '--registry', fixtureRegistry, '--database-url', database.url]);
    expect(kill.code, kill.stderr).toBe(0);
    await pollUntil('the notified cache to route to legacy', async () => (await notified!.enqueue('test.noop', {})).engine === 'LEGACY', { intervalMs: 20, timeoutMs: 20_000 });
    await listening.close();

    now += ttlMs - 1;
    expect((await bounded!.enqueue('test.noop', {})).engine).toBe('PGBOSS'); // still within its TTL
    now += 1;
    expect((await bounded!.enqueue('test.noop', {})).engine).toBe('LEGACY'); // one TTL after its load

    const history = await runCliInProcess(['rollout', 'history', '--type', 'test.noop', '--json', '--database-url', database.url]);
    expect(JSON.parse(history.stdout).events[0]).toMatchObject({ actor: 'alice', action: 'flag.kill', reason: 'incident 42', after: { killSwitch: true } });
  });

  it('listens again after its LISTEN connection drops, and sees the next changes by notice', async () => {
    const listeners = async () =>
      (
        await pool.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'cutover-flags' AND query ILIKE 'LISTEN%'`,
        )
      ).rows.map((row) => row.pid);
    const others = new Set(await listeners()); // the fixture producer's own cache
    const ours = async () => (await listeners()).filter((pid) => !others.has(pid));

    const cache = new FlagCache({ pool, databaseUrl: database.url, ttlMs: 600_000 });
    await cache.listen();
    try {
      const [before] = await pollUntil('the listener', async () => ((await ours()).length === 1 ? ours() : undefined));
      expect((await cache.get('test.noop')).typeFlag).toBeUndefined();

      const { rows } = await pool.query<{ terminated: boolean }>(`SELECT pg_terminate_backend($1) AS terminated`, [before]);
      expect(rows).toEqual([{ terminated: true }]);
      await pollUntil('a new listener', async () => {
        const pids = await ours();
        return pids.length === 1 && pids[0] !== before;
      });

      // Two changes after the reconnect, each seen well within the (600 s) TTL: by notice only.
      for (const basisPoints of [1200, 3400]) {
        await changeFlag(pool, { jobType: 'test.noop', basisPoints }, { actor: 'test', action: 'flag.set' });
        await pollUntil(`the cache to see ${basisPoints}`, async () => (await cache.get('test.noop')).typeFlag?.basisPoints === basisPoints, { intervalMs: 20, timeoutMs: 20_000 });
      }
    } finally {
      await cache.close();
    }
  });

  it('rejects bad percentages and unknown types with exit 2 and changes nothing', async () => {
    for (const bad of ['-1', '101', 'abc', '12.345', '']) {
      const result = await runCliInProcess(['rollout', 'set', bad, '--database-url', database.url]);
      expect(result.code, `percent '${bad}'`).toBe(2);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect((await runCliInProcess(['rollout', 'set', '10', '--type', 'no.such.type', '--database-url', database.url])).code).toBe(2);
    expect(await countWhere(pool, 'TRUE')).toBe(0);
    expect(Number((await pool.query(`SELECT count(*) AS n FROM "RolloutFlag"`)).rows[0].n)).toBe(0);

    const ok = await runCliInProcess(['rollout', 'set', '25%', '--type', 'evaluation.process', '--json', '--database-url', database.url]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).flag).toMatchObject({ jobType: 'evaluation.process', basisPoints: 2500 });
    expect(JSON.parse((await runCliInProcess(['rollout', 'set', '12.5', '--json', '--database-url', database.url])).stdout).flag.basisPoints).toBe(1250);
  });
});

describe('end to end at 50 %', () => {
  it('runs 200 jobs on both engines, each exactly once, each on the engine its row names', async () => {
    await setPercent(pool, 50);
    const results = await producer.manager.enqueueMany('test.record', Array.from({ length: 200 }, (_, i) => ({ payload: { tag: String(i) } })));
    const onPgboss = results.filter((r) => r.engine === 'PGBOSS').length;
    // Sticky buckets of random ids: 50 % ± 5 standard deviations (7.1) of 200 draws.
    expect(onPgboss).toBeGreaterThan(64);
    expect(onPgboss).toBeLessThan(136);

    const common = ['--registry', fixtureRegistry, '--database-url', database.url];
    const workers = [
      startCli(['worker', '--engine', 'legacy', '--concurrency', '8', '--poll-ms', '50', ...common]),
      startCli(['worker', '--engine', 'pgboss', ...common]),
    ];
    await pollUntil('200 completed jobs', async () => (await countWhere(pool, `status = 'COMPLETED'`)) === 200, { timeoutMs: 150_000, intervalMs: 250 });
    for (const worker of workers) worker.kill('SIGTERM');
    expect((await Promise.all(workers.map((w) => w.exited))).map((e) => e.code)).toEqual([0, 0]);

    const { rows } = await pool.query<{ mismatched: string; deliveries: string; jobs: string }>(
      `SELECT count(*) FILTER (WHERE split_part(d.engine, ':', 1) <> j.engine::text) AS mismatched,
              count(*) AS deliveries, count(DISTINCT d."jobId") AS jobs
         FROM "DemoDelivery" d JOIN "Job" j ON j.id::text = d."jobId"`,
    );
    expect(rows[0]).toEqual({ mismatched: '0', deliveries: '200', jobs: '200' });
    expect(await countWhere(pool, `attempts <> 1`)).toBe(0);
  }, 180_000);
});
