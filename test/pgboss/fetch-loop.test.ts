// DESIGN §10 "a worker keeps every slot busy": the pg-boss engine fetches as many jobs as it has
// free slots, as each finishes, so a slow job holds its own slot and never a batch.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Pool } from '../../src/db/pool.js';
import { defineJob } from '../../src/jobs/define.js';
import { createRegistry, type JobRegistry } from '../../src/jobs/registry.js';
import { startBoss } from '../../src/pgboss/boss.js';
import { FetchLoop } from '../../src/pgboss/fetch-loop.js';
import { BossWorker } from '../../src/pgboss/worker.js';
import { bossState, quietLog, setPercent, startProducer, type Producer } from '../helpers/engines.js';
import { useDatabaseFixture } from '../helpers/fixture.js';
import { countWhere, testPool } from '../helpers/jobs.js';
import { pollUntil } from '../helpers/wait.js';

const fixture = useDatabaseFixture();
let pool: Pool;
let producer: Producer | undefined;
const cleanups: (() => Promise<unknown>)[] = [];
beforeEach(() => ({ pool } = fixture));
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  await producer?.close();
  producer = undefined;
});

async function startWorker(registry: JobRegistry, concurrency: number): Promise<BossWorker> {
  const workerPool = testPool(fixture.database.url);
  const boss = await startBoss({ databaseUrl: fixture.database.url, log: quietLog, role: 'worker' });
  const worker = new BossWorker({ boss, pool: workerPool, registry, log: quietLog, concurrency, pollingIntervalSeconds: 0.5 });
  await worker.start();
  cleanups.push(() => workerPool.end(), () => worker.stop(5000));
  return worker;
}

describe('the pg-boss worker with jobs of mixed durations', () => {
  it('runs the short jobs in the free slots while a long one runs: all 12 finish before the long one', async () => {
    const finished: { ms: number; at: number }[] = [];
    const definition = defineJob({
      name: 'loop.sleep',
      schema: z.object({ ms: z.number().int() }),
      async handler({ ms }) {
        await sleep(ms);
        finished.push({ ms, at: Date.now() });
        return { slept: ms };
      },
    });
    const registry = createRegistry([definition]);
    producer = await startProducer(fixture.database.url, pool, registry);
    await setPercent(pool, 100);
    // The long job first, so the first fetch takes it with three short ones.
    await producer.manager.enqueue('loop.sleep', { ms: 3000 });
    await producer.manager.enqueueMany('loop.sleep', Array.from({ length: 12 }, () => ({ payload: { ms: 50 } })));
    await startWorker(registry, 4);

    await pollUntil('all 13 to complete', async () => (await countWhere(pool, `status = 'COMPLETED'`)) === 13, { timeoutMs: 20_000 });
    const long = finished.find((job) => job.ms === 3000)!;
    const short = finished.filter((job) => job.ms === 50);
    expect(short).toHaveLength(12);
    // A batch-at-a-time worker holds the batch with the long job until it ends: 9 of the short ones would finish after it.
    expect(short.filter((job) => job.at > long.at)).toEqual([]);
  });
});

describe('the pg-boss worker at concurrency 200', () => {
  it('has all 200 jobs running at once in one process', async () => {
    let running = 0;
    let peak = 0;
    let open!: () => void;
    const allRunning = new Promise<void>((resolve) => (open = resolve));
    const definition = defineJob({
      name: 'loop.barrier',
      schema: z.object({}).passthrough(),
      timeoutSeconds: 60,
      async handler() {
        running += 1;
        peak = Math.max(peak, running);
        if (running === 200) open();
        await allRunning;
        running -= 1;
        return { ok: true };
      },
    });
    const registry = createRegistry([definition]);
    producer = await startProducer(fixture.database.url, pool, registry);
    await setPercent(pool, 100);
    await producer.manager.enqueueMany('loop.barrier', Array.from({ length: 200 }, () => ({ payload: {} })));
    await startWorker(registry, 200);

    await pollUntil('all 200 to complete', async () => (await countWhere(pool, `status = 'COMPLETED'`)) === 200, { timeoutMs: 60_000 });
    expect(peak).toBe(200);
  }, 90_000);
});

describe('a pg-boss worker stopped while a job runs past its shutdown timeout', () => {
  it('aborts the job\'s signal and fails the attempt, fenced, so pg-boss retries it; the stop returns in time', async () => {
    let aborted = false;
    const definition = defineJob({
      name: 'loop.stuck',
      schema: z.object({}).passthrough(),
      retry: { limit: 2, delaySeconds: 0 },
      async handler(_payload, { signal }) {
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        aborted = true;
        return { late: true };
      },
    });
    const registry = createRegistry([definition]);
    producer = await startProducer(fixture.database.url, pool, registry);
    await setPercent(pool, 100);
    const { id } = await producer.manager.enqueue('loop.stuck', {});
    const worker = await startWorker(registry, 4);
    await pollUntil('the job to run', async () => (await countWhere(pool, `status = 'RUNNING'`)) === 1);

    const started = Date.now();
    await worker.stop(300);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(aborted).toBe(true);
    expect(await bossState(pool, 'loop.stuck', id)).toMatchObject({ state: 'retry' });
  });
});

describe('FetchLoop', () => {
  it('keeps its slots full, never more, fetching as many as are free as jobs finish', async () => {
    const controller = new AbortController();
    let queued = 30;
    let running = 0;
    let peak = 0;
    const limits: number[] = [];
    const loop = new FetchLoop({
      slots: 5,
      pollMs: 10_000,
      signal: controller.signal,
      onError: () => 10,
      take: async (limit) => {
        limits.push(limit);
        const count = Math.min(limit, queued);
        queued -= count;
        const jobs = Array.from({ length: count }, (_, index) => {
          running += 1;
          peak = Math.max(peak, running);
          return sleep(5 + index * 7).then(() => (running -= 1));
        });
        return { fetched: count, running: jobs };
      },
    });
    await pollUntil('the queue to be drained', async () => queued === 0 && loop.active === 0);
    controller.abort();
    await loop.stopped;
    expect(peak).toBe(5);
    expect(limits[0]).toBe(5);
    expect(limits.every((limit) => limit >= 1 && limit <= 5)).toBe(true);
  });

  it('backs off through failing fetches and fetches again at once when woken after a short one', async () => {
    const controller = new AbortController();
    let calls = 0;
    const failures: number[] = [];
    let recovered = 0;
    const loop = new FetchLoop({
      slots: 2,
      pollMs: 60_000,
      signal: controller.signal,
      onError: (_error, count) => (failures.push(count), 20),
      onRecovered: () => (recovered += 1),
      take: async () => {
        calls += 1;
        if (calls <= 3) throw new Error('connection terminated unexpectedly');
        return { fetched: 0, running: [] };
      },
    });
    await pollUntil('a fetch after the failures', async () => calls === 4);
    expect(failures).toEqual([1, 2, 3]);
    expect(recovered).toBe(1);
    // The fetch came back empty: with a minute's poll, only a wake fetches again.
    loop.wake();
    await pollUntil('the woken fetch', async () => calls === 5);
    controller.abort();
    await loop.stopped;
  });
});
