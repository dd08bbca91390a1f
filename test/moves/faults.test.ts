import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import type { JobRegistry } from '../../src/jobs/registry.js';
import { LegacyRunner } from '../../src/legacy/runner.js';
import { rollback } from '../../src/moves/rollback.js';
import { startBoss } from '../../src/pgboss/boss.js';
import { BossWorker } from '../../src/pgboss/worker.js';
import { changeFlag, FlagCache, readFlags } from '../../src/state/flags.js';
import type { TestDatabase } from '../helpers/database.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { bossState, quietLog, setPercent, type Producer, withBossWorker } from '../helpers/engines.js';
import { ownership } from '../helpers/invariants.js';
import { addLegacyJobs, countWhere, fixtureRegistry, jobRows } from '../helpers/jobs.js';
import { runCliInProcess } from '../helpers/cli.js';
import { startCli } from '../helpers/process.js';
import { pollUntil } from '../helpers/wait.js';
import { expireJob, moveJobTo, onLastAttempt } from '../factories/pgboss.js';

// Each test here runs one interleaving that once broke cutover's promise (issue "Correctness
// under faults"): it fails on the code before the fix and passes after.

const fixture = useEngineFixture({});
let database: TestDatabase;
let pool: Pool;
let registry: JobRegistry;
let producer: Producer;
beforeEach(() => ({ database, pool, registry, producer } = fixture));

const cli = (...args: string[]) => runCliInProcess([...args, '--registry', fixtureRegistry, '--database-url', database.url]);
const cliProcess = (...args: string[]) => startCli([...args, '--registry', fixtureRegistry, '--database-url', database.url]);

/** An in-process pg-boss worker that supervises every second, so expiry happens soon. */
const withWorker = <T>(run: (worker: BossWorker) => Promise<T>, types?: string[]) => withBossWorker({ url: database.url, pool, registry }, run, types);

async function deliveries(jobId: string): Promise<string[]> {
  const { rows } = await pool.query<{ engine: string }>(`SELECT engine FROM "DemoDelivery" WHERE "jobId" = $1 ORDER BY at`, [jobId]);
  return rows.map((row) => row.engine);
}

async function bossJob(name: string, id: string): Promise<{ state: string; retry_count: number; retry_limit: number; start_after: Date } | undefined> {
  const { rows } = await pool.query(`SELECT state, retry_count, retry_limit, start_after FROM pgboss.job WHERE name = $1 AND id = $2`, [name, id]);
  return rows[0];
}

const rollbackNow = (types?: string[]) =>
  rollback({ pool, databaseUrl: database.url, boss: producer.boss, registry, log: quietLog, actor: 'test', settleMs: 50, ...(types ? { types } : {}) });

describe('a worker that lost its claim writes nothing', () => {
  it('a stalled worker settling after expiry leaves the row alone while pg-boss runs the job again', async () => {
    await setPercent(pool, 100);
    const { id } = await producer.manager.enqueue('test.stall', { ms: 12_000 });
    // Worker A blocks its event loop on attempt 1 for 12 s; the job expires after 4 s. A itself
    // never supervises within the test, so only the supervisor below expires anything.
    const stalled = cliProcess('worker', '--engine', 'pgboss', '--types', 'test.stall', '--supervise-interval', '3600');
    await pollUntil('attempt 1 to start', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'RUNNING', { timeoutMs: 30_000 });
    const supervisor = await startBoss({ databaseUrl: database.url, log: quietLog, role: 'worker', superviseIntervalSeconds: 1 });
    try {
      await pollUntil('pg-boss to expire attempt 1', async () => (await bossState(pool, 'test.stall', id))?.state === 'retry', { timeoutMs: 30_000 });
    } finally {
      await supervisor.stop({ graceful: false, close: true });
    }
    try {
      // Attempt 2 is claimed by someone else (once its retry backoff is over) while A is still stalled.
      const second = await pollUntil('attempt 2 to be claimed', async () => (await producer.boss.fetch('test.stall'))[0], { timeoutMs: 30_000 });
      expect(second).toMatchObject({ id, retryCount: 1 });
      expect(await deliveries(id)).toEqual([]);

      // A wakes up, records its run and tries to settle attempt 1.
      await pollUntil('the stalled run to finish', async () => (await deliveries(id)).includes('PGBOSS:1'), { timeoutMs: 30_000 });
      // Either A says it lost the claim, or (the defect) it writes its stale outcome to the row.
      await pollUntil('A to give up its settle', async () => /claim lost/.test(stalled.stderr()) || (await jobRows(pool, 'id = $1', [id]))[0]?.status !== 'RUNNING', {
        timeoutMs: 30_000,
      });
      expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ status: 'RUNNING', attempts: 1 });
      expect(await bossState(pool, 'test.stall', id)).toEqual({ state: 'active', retry_count: 1 });
    } finally {
      stalled.kill('SIGTERM');
      expect((await stalled.exited).code).toBe(0);
    }
  }, 90_000);

  it('rollback never turns a finished row back into work', async () => {
    await setPercent(pool, 100);
    const { id } = await producer.manager.enqueue('test.noop', {});
    // What a late settle used to leave: the row COMPLETED while pg-boss holds the job in retry.
    await moveJobTo({ boss: producer.boss, pool }, { queue: 'test.noop', id }, 'retry');
    await pool.query(`UPDATE "Job" SET status = 'COMPLETED', "completedAt" = now(), attempts = 1 WHERE id = $1`, [id]);

    const summary = await rollbackNow(['test.noop']);
    expect(summary.moved).toBe(0);
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ engine: 'PGBOSS', status: 'COMPLETED' });
    expect(await bossState(pool, 'test.noop', id)).toMatchObject({ state: 'retry' });
  });
});

describe('the way back is never blocked', () => {
  it('rollback during a long migrate sets the kill switch at once, stops the migrate and moves everything back', async () => {
    await addLegacyJobs(pool, 'test.noop', Array.from({ length: 20_000 }, () => ({})));
    const migrate = cliProcess('migrate', '--batch', '20', '--json');
    await pollUntil('migrate to be under way', async () => (await countWhere(pool, `engine = 'PGBOSS'`)) >= 200, { timeoutMs: 30_000 });

    const result = await cli('rollback', '--yes', '--json', '--timeout', '60');
    expect(result.code, result.stderr).toBe(0);
    const migrated = await migrate.exited;
    expect(migrated.code, migrate.stderr()).toBe(1);
    expect(JSON.parse(migrate.stdout()).stoppedBy).toMatch(/kill switch on/);
    expect(migrate.stderr()).toMatch(/migrate stopped early: kill switch on/);

    expect((await readFlags(pool)).get('*')?.killSwitch).toBe(true);
    expect(JSON.parse(result.stdout).moved).toBe(JSON.parse(migrate.stdout()).moved);
    expect(await ownership(pool)).toMatchObject({ rows: 20_000, pgbossRows: 0, pgbossJobs: 0, lost: 0, inBoth: 0, orphans: 0 });
    expect(await countWhere(pool, `engine = 'LEGACY' AND status = 'PENDING'`)).toBe(20_000);

    // A migrate started after the rollback stops before its first batch.
    const late = await cli('migrate', '--json');
    expect(late.code).toBe(1);
    expect(JSON.parse(late.stdout)).toMatchObject({ moved: 0, stoppedBy: expect.stringMatching(/kill switch/) });
  }, 120_000);
});

describe('everything is carried both ways', () => {
  it('a chain keeps its attempts across migrate, a pg-boss failure, rollback and migrate again, and never runs past its maximum', async () => {
    // A legacy chain at attempt 2 of 4 (always failing), waiting for its third attempt.
    const [id] = await addLegacyJobs(pool, 'test.fail-times', [{ times: 100 }], { maxAttempts: 4 });
    await pool.query(`UPDATE "Job" SET attempts = 2 WHERE id = $1`, [id]);

    expect(JSON.parse((await cli('migrate', '--json')).stdout).moved).toBe(1);
    expect(await bossJob('test.fail-times', id!)).toMatchObject({ state: 'created', retry_count: 2, retry_limit: 3 });

    // Attempt 3 runs on pg-boss and fails; the job waits in retry when the rollback comes.
    const [third] = await producer.boss.fetch('test.fail-times');
    expect(third).toMatchObject({ id, retryCount: 2 });
    await producer.boss.fail('test.fail-times', { id: id!, retryCount: 2 }, { message: 'failing attempt 3' });
    expect((await bossJob('test.fail-times', id!))?.state).toBe('retry');
    expect((await rollbackNow()).moved).toBe(1);
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ engine: 'LEGACY', status: 'PENDING', attempts: 3 });

    // Back to pg-boss: one attempt left, and it is attempt 4.
    await changeFlag(pool, { jobType: '*', killSwitch: false }, { actor: 'test', action: 'flag.unkill' });
    expect(JSON.parse((await cli('migrate', '--json')).stdout).moved).toBe(1);
    expect(await bossJob('test.fail-times', id!)).toMatchObject({ state: 'created', retry_count: 3, retry_limit: 3 });
    await withWorker(() => pollUntil('the final failure', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'FAILED'), ['test.fail-times']);
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ attempts: 4, error: 'failing attempt 4' });
    expect((await bossJob('test.fail-times', id!))?.state).toBe('failed');
  });

  it('a scheduled job keeps its time through migrate and rollback, and pg-boss does not run it early', async () => {
    const [id, now] = await addLegacyJobs(pool, 'test.record', [{ tag: 'tomorrow' }, { tag: 'now' }]);
    const { rows } = await pool.query<{ runAfter: Date }>(`UPDATE "Job" SET "runAfter" = date_trunc('milliseconds', now()) + interval '1 day' WHERE id = $1 RETURNING "runAfter"`, [id]);
    const due = rows[0]!.runAfter;

    expect(JSON.parse((await cli('migrate', '--json')).stdout).moved).toBe(2);
    expect((await bossJob('test.record', id!))?.start_after).toEqual(due);
    // The worker runs the job that is due, and leaves tomorrow's alone.
    await withWorker(() => pollUntil('the due job', async () => (await deliveries(now!)).length === 1), ['test.record']);
    expect(await deliveries(id!)).toEqual([]);
    expect((await bossJob('test.record', id!))?.state).toBe('created');

    expect((await rollbackNow()).moved).toBe(1);
    const [row] = await pool.query<{ runAfter: Date }>(`SELECT "runAfter" FROM "Job" WHERE id = $1`, [id]).then((r) => r.rows);
    expect(row?.runAfter).toEqual(due);
  });
});

describe('a success is never run again', () => {
  it('pg-boss: a result Postgres refuses is dropped, the job completes once and says why', async () => {
    await setPercent(pool, 100);
    const { id } = await producer.manager.enqueue('test.nul-result', {});
    await withWorker(() => pollUntil('a final state', async () => ['completed', 'failed'].includes((await bossState(pool, 'test.nul-result', id))?.state ?? '')), ['test.nul-result']);
    expect(await bossState(pool, 'test.nul-result', id)).toEqual({ state: 'completed', retry_count: 0 });
    const [row] = await jobRows(pool, 'id = $1', [id]);
    expect(row).toMatchObject({ status: 'COMPLETED', attempts: 1, result: null });
    expect(row?.error).toMatch(/^succeeded, but its result could not be stored: \S/);
    expect(await deliveries(id)).toEqual(['PGBOSS']);
  });
});

describe('hand-back: no job runs on pg-boss after the kill switch is seen', () => {
  it('a job committed by a caller after the rollback is handed back by the worker and runs once, on legacy', async () => {
    await setPercent(pool, 100);
    const client = await pool.connect();
    let id: string;
    try {
      await client.query('BEGIN');
      const tx = { query: async <Row>(text: string, values?: unknown[]) => (await client.query(text, values)).rows as Row[], boss: { executeSql: (text: string, values?: unknown[]) => client.query(text, values) } };
      ({ id } = await producer.manager.enqueue('test.record', { tag: 'late' }, { tx }));
      // The rollback sweeps while the caller's transaction is still open: it cannot see the job.
      expect((await rollbackNow()).moved).toBe(0);
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ engine: 'PGBOSS', status: 'PENDING' });

    const boss = await startBoss({ databaseUrl: database.url, log: quietLog, role: 'worker' });
    const worker = new BossWorker({ boss, pool, registry, log: quietLog, pollingIntervalSeconds: 0.5, types: ['test.record'] });
    await worker.start();
    await pollUntil('the hand-back', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.engine === 'LEGACY');
    expect((await worker.stop(5000)).handedBack).toBe(1);
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ engine: 'LEGACY', status: 'PENDING', routeReason: 'handedback', attempts: 0 });
    expect(await bossJob('test.record', id)).toBeUndefined();
    expect(await deliveries(id)).toEqual([]);

    const controller = new AbortController();
    const runner = new LegacyRunner({ pool, databaseUrl: database.url, registry, log: quietLog, pollMs: 20 });
    const done = runner.run(controller.signal);
    await pollUntil('the legacy run', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'COMPLETED');
    controller.abort();
    await done;
    expect(await deliveries(id)).toEqual(['LEGACY:late']);
  });

  it('a flag load that started before a change notice is not trusted after it', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let hold = true;
    let read = false;
    // The real query runs at once; only its answer is delivered late, as on a slow network.
    const slowPool = {
      query: async (text: string, values?: unknown[]) => {
        const result = await pool.query(text, values);
        read = true;
        if (hold) await gate;
        return result;
      },
    } as unknown as Pool;
    const cache = new FlagCache({ pool: slowPool, ttlMs: 60_000 });
    const stale = cache.get('test.noop');
    await pollUntil('the load to have read the flags', async () => read);

    await changeFlag(pool, { jobType: '*', killSwitch: true }, { actor: 'test', action: 'flag.kill' });
    cache.invalidate(); // what the NOTIFY of that change does
    hold = false;
    release();
    expect((await stale).defaultFlag).toBeUndefined();
    expect((await cache.get('test.noop')).defaultFlag?.killSwitch).toBe(true);
  });
});

describe('a job pg-boss settles without its worker', () => {
  it('expired on its last attempt after its worker died: a live worker copies FAILED to the row, audited, without an operator', async () => {
    await setPercent(pool, 100);
    const { id, pgbossJobId } = await producer.manager.enqueue('test.noop', {});
    // A worker fetched it, marked the row, and died; the job had no retry left.
    const [fetched] = await producer.boss.fetch('test.noop');
    expect(fetched?.id).toBe(pgbossJobId);
    await pool.query(`UPDATE "Job" SET status = 'RUNNING', attempts = 1, "updatedAt" = now() - interval '2 minutes' WHERE id = $1`, [id]);
    await onLastAttempt({ pool }, { queue: 'test.noop', id: pgbossJobId! });
    await expireJob({ pool }, { queue: 'test.noop', id: pgbossJobId! });

    // Another worker, for other types: pg-boss's supervision and the mirroring cover every queue.
    const worker = cliProcess('worker', '--engine', 'pgboss', '--types', 'test.record', '--supervise-interval', '1');
    await pollUntil('pg-boss to expire it', async () => (await bossJob('test.noop', pgbossJobId!))?.state === 'failed', { timeoutMs: 30_000 });
    await pollUntil('the row to say FAILED', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'FAILED', { timeoutMs: 30_000 });
    worker.kill('SIGTERM');
    expect((await worker.exited).code).toBe(0);
    const { rows } = await pool.query<{ actor: string }>(`SELECT actor FROM "RolloutEvent" WHERE action = 'reconcile.fix.drift'`);
    expect(rows).toHaveLength(1);
    expect(rows[0]!.actor).toMatch(/^worker /);
  });
});
