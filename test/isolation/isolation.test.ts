import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { z } from 'zod';
import { defineJob } from '../../src/jobs/define.js';
import { createRegistry, type JobRegistry } from '../../src/jobs/registry.js';
import { startBoss } from '../../src/pgboss/boss.js';
import { BossWorker } from '../../src/pgboss/worker.js';
import { repoRoot } from '../helpers/cli.js';
import type { TestDatabase } from '../helpers/database.js';
import { bossState, quietLog, type Producer } from '../helpers/engines.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { recordStatusHistory, statusHistory } from '../helpers/history.js';
import { jobRows } from '../helpers/jobs.js';
import { pollUntil } from '../helpers/wait.js';

// Process isolation on pg-boss: a type with `isolation: 'process'` runs in a
// child process through the legacy runner's executor; a leak, a crash or a hang ends that
// process, never the worker, and the outcome settles as an in-process one does.

const isolationRegistry = join(repoRoot, 'test', 'fixtures', 'isolation-registry.mjs');
const fixture = useEngineFixture({ percent: 100, registry: isolationRegistry });
let database: TestDatabase;
let pool: Pool;
let registry: JobRegistry;
let producer: Producer;
beforeEach(() => ({ database, pool, registry, producer } = fixture));

async function startWorker(): Promise<BossWorker> {
  const boss = await startBoss({ databaseUrl: database.url, log: quietLog, role: 'worker', superviseIntervalSeconds: 1 });
  const worker = new BossWorker({ boss, pool, registry, log: quietLog, pollingIntervalSeconds: 0.5, killGraceMs: 300 });
  await worker.start();
  return worker;
}

async function withWorker<T>(run: (worker: BossWorker) => Promise<T>): Promise<T> {
  const worker = await startWorker();
  try {
    return await run(worker);
  } finally {
    await worker.stop(5000);
  }
}

const rowOf = async (id: string) => (await jobRows(pool, 'id = $1', [id]))[0];
const settled = (id: string, status: string) => pollUntil(`job ${id} ${status}`, async () => (await rowOf(id))?.status === status);

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('process isolation on pg-boss', () => {
  it('runs an isolated job in a process of its own, under its heap cap, and stores its result like an in-process one', async () => {
    const isolated = await producer.manager.enqueue('iso.echo', { tag: 'child' });
    const inProcess = await producer.manager.enqueue('iso.echo-inprocess', { tag: 'worker' });
    await withWorker(async () => {
      await settled(isolated.id, 'COMPLETED');
      await settled(inProcess.id, 'COMPLETED');
    });

    const child = await rowOf(isolated.id);
    const local = await rowOf(inProcess.id);
    const childResult = child!.result as { pid: number; heapLimitMb: number };
    const localResult = local!.result as { pid: number; heapLimitMb: number };
    expect(child).toMatchObject({ engine: 'PGBOSS', attempts: 1, error: null });
    expect(childResult).toMatchObject({ engine: 'PGBOSS', jobId: isolated.pgbossJobId, rowId: isolated.id, attempt: 1 });
    expect(localResult.pid).toBe(process.pid);
    expect(childResult.pid).not.toBe(process.pid);
    // memoryLimitMb: 64 caps the old space; V8 adds its young generation on top.
    expect(childResult.heapLimitMb).toBeLessThan(128);
    expect(localResult.heapLimitMb).toBeGreaterThan(childResult.heapLimitMb);
    // The handler's writes go through the child's own connection (context.db()).
    const { rows } = await pool.query(`SELECT "jobId", engine FROM "DemoDelivery" ORDER BY id`);
    expect(rows).toEqual(expect.arrayContaining([{ jobId: isolated.pgbossJobId, engine: 'PGBOSS:child' }, { jobId: inProcess.pgbossJobId, engine: 'PGBOSS:worker' }]));
    expect(await bossState(pool, 'iso.echo', isolated.id)).toEqual({ state: 'completed', retry_count: 0 });
  });

  it('a job that leaks memory until its process dies, and one that kills its process, leave the worker up; each is retried per its policy', async () => {
    await recordStatusHistory(pool);
    const leak = await producer.manager.enqueue('iso.leak', {});
    const crash = await producer.manager.enqueue('iso.crash', { times: 1 });
    await withWorker(async () => {
      await settled(leak.id, 'FAILED');
      await settled(crash.id, 'COMPLETED');
      // The same worker goes on running jobs, isolated and in process.
      const after = await producer.manager.enqueue('iso.echo', {});
      const local = await producer.manager.enqueue('iso.echo-inprocess', {});
      await settled(after.id, 'COMPLETED');
      await settled(local.id, 'COMPLETED');
      expect((await rowOf(local.id))!.result).toMatchObject({ pid: process.pid });
    });

    // The leak: retry limit 1, so two runs, each killed by its 48 MB heap cap; then final.
    expect(await rowOf(leak.id)).toMatchObject({ status: 'FAILED', attempts: 2, error: 'job process ran out of memory (heap limit 48 MB)' });
    expect((await statusHistory(pool, leak.id)).map((change) => [change.status, change.attempts])).toEqual([
      ['PENDING', 0],
      ['RUNNING', 1],
      ['PENDING', 1],
      ['RUNNING', 2],
      ['FAILED', 2],
    ]);
    expect(await bossState(pool, 'iso.leak', leak.id)).toEqual({ state: 'failed', retry_count: 1 });
    const { rows: deadLetters } = await pool.query(`SELECT data FROM pgboss.job WHERE name = 'iso.leak.dlq'`);
    expect(deadLetters).toHaveLength(1);

    // The crash: killed by SIGKILL on its first run, a retryable failure; the retry succeeds.
    expect(await rowOf(crash.id)).toMatchObject({ status: 'COMPLETED', attempts: 2, result: { survivedOnAttempt: 2 } });
    expect((await statusHistory(pool, crash.id)).map((change) => change.status)).toEqual(['PENDING', 'RUNNING', 'PENDING', 'RUNNING', 'COMPLETED']);
    expect(await bossState(pool, 'iso.crash', crash.id)).toEqual({ state: 'completed', retry_count: 1 });
  });

  it('kills a job process that overruns its timeout and ignores SIGTERM', async () => {
    const hang = await producer.manager.enqueue('iso.hang', {});
    const started = Date.now();
    await withWorker(() => settled(hang.id, 'FAILED'));
    expect(await rowOf(hang.id)).toMatchObject({ status: 'FAILED', attempts: 1, error: 'timed out after 1s' });
    expect(await bossState(pool, 'iso.hang', hang.id)).toMatchObject({ state: 'failed' });
    // 1 s timeout + 0.3 s kill grace, not the handler's ten minutes.
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('a worker that stops kills the job processes still running and leaves none behind; pg-boss runs the job again', async () => {
    const long = await producer.manager.enqueue('iso.long', {});
    const worker = await startWorker();
    let pid: number;
    try {
      pid = await pollUntil('the job process to start', async () => {
        const { rows } = await pool.query<{ engine: string }>(`SELECT engine FROM "DemoDelivery" WHERE "jobId" = $1`, [long.pgbossJobId]);
        return rows[0] && Number(rows[0].engine.slice('pid:'.length));
      });
      expect(isAlive(pid)).toBe(true);
    } finally {
      await worker.stop(500);
    }
    expect(isAlive(pid)).toBe(false);
    // Failed by pg-boss's shutdown while active, with retries left: it will run again (pg-boss 12
    // counts the attempt in retry_count when it fetches the job again).
    expect(await bossState(pool, 'iso.long', long.id)).toEqual({ state: 'retry', retry_count: 0 });
  });
});

describe('isolation options', () => {
  const job = (extra: object) => () => defineJob({ name: 'iso.options', schema: z.object({}), ...extra, async handler() {
    return null;
  } });

  it('refuses what cannot be honoured, in one line that says the rule', () => {
    expect(job({ isolation: 'thread' })).toThrow(/^iso\.options: isolation must be 'none' or 'process', got "thread"$/);
    expect(job({ memoryLimitMb: 64 })).toThrow(/^iso\.options: memoryLimitMb needs isolation: 'process' \(an in-process job shares the worker's heap\)$/);
    expect(job({ isolation: 'process', memoryLimitMb: 8 })).toThrow(/^iso\.options: memoryLimitMb must be an integer from 16 to 65536 \(MiB\), got 8$/);
    expect(job({})().isolation).toBe('none');
  });

  it('a worker refuses isolated types of a registry a job process could not load', async () => {
    const inMemory = createRegistry([job({ isolation: 'process' })()]);
    const boss = await startBoss({ databaseUrl: database.url, log: quietLog });
    try {
      expect(() => new BossWorker({ boss, pool, registry: inMemory, log: quietLog })).toThrow(/job type iso\.options asks for isolation: 'process', but its registry was not loaded from a module/);
    } finally {
      await boss.stop({ graceful: false, close: true });
    }
  });
});
