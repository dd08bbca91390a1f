import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import type { JobRegistry } from '../../src/jobs/registry.js';
import { LegacyRunner } from '../../src/legacy/runner.js';
import { createLogger } from '../../src/support/log.js';
import type { TestDatabase } from '../helpers/database.js';
import { useDatabaseFixture } from '../helpers/fixture.js';
import { addLegacyJobs, countWhere, fixtureRegistry, jobRows } from '../helpers/jobs.js';
import { startCli } from '../helpers/process.js';
import { pollUntil } from '../helpers/wait.js';

const log = createLogger({ level: 'silent' });
const fixture = useDatabaseFixture(fixtureRegistry);
let database: TestDatabase;
let pool: Pool;
let registry: JobRegistry;
beforeEach(() => ({ database, pool, registry } = fixture));

/** Runs an in-process runner until no row is PENDING or RUNNING, then stops it. */
async function runUntilIdle(options: Partial<ConstructorParameters<typeof LegacyRunner>[0]> = {}) {
  const controller = new AbortController();
  const runner = new LegacyRunner({ pool, databaseUrl: database.url, registry, log, pollMs: 20, killGraceMs: 300, ...options });
  const done = runner.run(controller.signal);
  await pollUntil('all jobs to settle', async () => (await countWhere(pool, `status IN ('PENDING', 'RUNNING') AND engine = 'LEGACY'`)) === 0, {
    timeoutMs: 45_000,
  });
  controller.abort();
  return done;
}

describe('legacy runner outcomes', () => {
  it('counts a result line as success even when the job process exits 1', async () => {
    const [id] = await addLegacyJobs(pool, 'test.exit1-after-result', [{}]);
    await runUntilIdle();
    const rows = await jobRows(pool);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ id, status: 'COMPLETED', result: { done: true }, attempts: 1, error: null });
  });

  it('kills a job that hangs past its timeout (SIGTERM, then SIGKILL) and retries it', async () => {
    const [first] = await addLegacyJobs(pool, 'test.hang', [{}], { maxAttempts: 2 });
    await runUntilIdle();
    const rows = await jobRows(pool);
    expect(rows.map((r) => [r.status, r.attempts, r.originalJobId])).toEqual([
      ['FAILED', 1, null],
      ['FAILED', 2, first],
    ]);
    expect(rows[0]?.error).toBe('timed out after 1s');
  });

  it('fails a crash without a result, keeps its stderr, and retries until maxAttempts', async () => {
    const [first] = await addLegacyJobs(pool, 'test.crash', [{}], { maxAttempts: 3 });
    await runUntilIdle();
    const rows = await jobRows(pool);
    expect(rows).toHaveLength(3);
    expect(rows.every((r) => r.status === 'FAILED')).toBe(true);
    expect(rows.map((r) => r.attempts)).toEqual([1, 2, 3]);
    expect(rows.slice(1).every((r) => r.originalJobId === first)).toBe(true);
    expect(rows[0]?.error).toBe('job process exited with code 7 without a result');
    expect(rows[0]?.logs).toContain('[stderr] about to crash');
  });

  it('makes no retry row for a NonRetryableError or an invalid payload', async () => {
    await addLegacyJobs(pool, 'test.nonretryable', [{}], { maxAttempts: 5 });
    await addLegacyJobs(pool, 'test.sleep', [{ ms: 'not a number' }], { maxAttempts: 5 });
    await runUntilIdle();
    const rows = await jobRows(pool);
    expect(rows).toHaveLength(2);
    expect(rows.find((r) => r.type === 'test.nonretryable')).toMatchObject({ status: 'FAILED', error: 'record not found' });
    expect(rows.find((r) => r.type === 'test.sleep')?.error).toMatch(/invalid payload for test.sleep: ms:/);
  });

  it('retries a failing job as new rows of one chain until it succeeds', async () => {
    const [first] = await addLegacyJobs(pool, 'test.fail-times', [{ times: 2 }], { maxAttempts: 4 });
    await runUntilIdle();
    const rows = await jobRows(pool);
    expect(rows.map((r) => [r.status, r.attempts])).toEqual([
      ['FAILED', 1],
      ['FAILED', 2],
      ['COMPLETED', 3],
    ]);
    expect(rows.slice(1).map((r) => r.originalJobId)).toEqual([first, first]);
    expect(rows[2]?.result).toEqual({ succeededOnAttempt: 3 });
  });

  it('never claims rows that belong to pg-boss, however many polls it makes', async () => {
    // pg-boss's rows come first in the claim order (higher priority, older): a claim that
    // ignored the engine would take them before any legacy row.
    await addLegacyJobs(pool, 'test.noop', [{}, {}, {}], { priority: 10 });
    await pool.query(`UPDATE "Job" SET engine = 'PGBOSS'`);
    const [first] = await addLegacyJobs(pool, 'test.noop', [{}]);
    const controller = new AbortController();
    const runner = new LegacyRunner({ pool, databaseUrl: database.url, registry, log, pollMs: 20 });
    const done = runner.run(controller.signal);
    await pollUntil('the first legacy job', async () => (await jobRows(pool, 'id = $1', [first]))[0]?.status === 'COMPLETED');
    // More polls: each later legacy job is claimed by a poll that also saw pg-boss's rows.
    for (let i = 0; i < 3; i += 1) {
      const [later] = await addLegacyJobs(pool, 'test.noop', [{}]);
      await pollUntil(`later legacy job ${i + 1}`, async () => (await jobRows(pool, 'id = $1', [later]))[0]?.status === 'COMPLETED');
    }
    controller.abort();
    expect(await done).toMatchObject({ completed: 4, failed: 0 });
    expect(await countWhere(pool, `engine = 'PGBOSS' AND status = 'PENDING' AND attempts = 0 AND "workerId" IS NULL AND "startedAt" IS NULL`)).toBe(3);
  });

  it('a runner whose row was recovered by another runner meanwhile does not overwrite it when its job finishes late', async () => {
    const [id] = await addLegacyJobs(pool, 'test.sleep', [{ ms: 1500 }], { maxAttempts: 2 });
    // A runner that stops heartbeating once it has claimed (a long GC pause, a network split).
    const controller = new AbortController();
    const late = new LegacyRunner({ pool, databaseUrl: database.url, registry, log, pollMs: 20, heartbeatMs: 600_000 });
    const done = late.run(controller.signal);
    await pollUntil('the job to start', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'RUNNING');

    // Another runner sees the silent heartbeat and recovers the row: FAILED, and a retry row.
    const other = new LegacyRunner({ pool, databaseUrl: database.url, registry, log, staleAfterMs: 200 });
    await pollUntil('the other runner to recover the row', async () => (await other.recoverStale()) === 1);
    const [recovered] = await jobRows(pool, 'id = $1', [id]);
    expect(recovered).toMatchObject({ status: 'FAILED', attempts: 1 });
    expect(recovered?.error).toMatch(/stopped heartbeating/);

    // The late runner's child finishes and tries to record its success; the retry row runs too.
    await pollUntil('the retry to complete', async () => (await countWhere(pool, `"originalJobId" = $1 AND status = 'COMPLETED'`, [id])) === 1, { timeoutMs: 30_000 });
    controller.abort();
    const stats = await done;
    // Only the retry counts as completed; the recovered row keeps what recovery wrote.
    expect(stats.completed).toBe(1);
    const [after] = await jobRows(pool, 'id = $1', [id]);
    expect(after).toMatchObject({ status: 'FAILED', attempts: 1, error: recovered?.error, result: null });
    expect(await countWhere(pool, 'TRUE')).toBe(2);
  });
});

describe('legacy runner processes', () => {
  it('runs 200 jobs exactly once with two runner processes at once', async () => {
    await addLegacyJobs(pool, 'test.record', Array.from({ length: 200 }, (_, i) => ({ tag: String(i) })));
    const args = ['worker', '--engine', 'legacy', '--registry', fixtureRegistry, '--poll-ms', '50', '--json', '--database-url', database.url];
    const workers = [startCli(args), startCli(args)];
    await pollUntil('200 completed jobs', async () => (await countWhere(pool, `status = 'COMPLETED'`)) === 200, { timeoutMs: 160_000 });
    for (const worker of workers) worker.kill('SIGTERM');
    const exits = await Promise.all(workers.map((w) => w.exited));
    expect(exits.map((e) => e.code)).toEqual([0, 0]);

    const deliveries = await pool.query<{ jobId: string; n: string }>(`SELECT "jobId", count(*) AS n FROM "DemoDelivery" GROUP BY 1`);
    expect(deliveries.rows).toHaveLength(200);
    expect(deliveries.rows.every((row) => row.n === '1')).toBe(true);
    const odd = await jobRows(pool, `status <> 'COMPLETED' OR attempts <> 1`);
    expect(odd.map((row) => ({ status: row.status, attempts: row.attempts, error: row.error }))).toEqual([]);
    const completedBy = workers.map((w) => JSON.parse(w.stdout()).completed as number);
    expect(completedBy[0]! + completedBy[1]!).toBe(200);
  }, 180_000);

  it('recovers the rows of a runner killed with SIGKILL; none stays RUNNING', async () => {
    const [id] = await addLegacyJobs(pool, 'test.sleep', [{ ms: 1500 }]);
    const victim = startCli(['worker', '--engine', 'legacy', '--registry', fixtureRegistry, '--poll-ms', '50', '--database-url', database.url]);
    await pollUntil('the job to start', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'RUNNING');
    victim.kill('SIGKILL');
    await victim.exited;

    const stats = await runUntilIdle({ staleAfterMs: 1000, heartbeatMs: 200 });
    expect(stats.recovered).toBe(1);
    const rows = await jobRows(pool);
    expect(rows.map((r) => [r.status, r.attempts])).toEqual([
      ['FAILED', 1],
      ['COMPLETED', 2],
    ]);
    expect(rows[0]?.error).toMatch(/stopped heartbeating/);
    expect(await countWhere(pool, `status = 'RUNNING'`)).toBe(0);
  });

  it('on SIGTERM lets running jobs finish, exits 0, and loses nothing', async () => {
    await addLegacyJobs(pool, 'test.sleep', Array.from({ length: 6 }, () => ({ ms: 800 })));
    const worker = startCli(['worker', '--engine', 'legacy', '--registry', fixtureRegistry, '--poll-ms', '50', '--json', '--database-url', database.url]);
    await pollUntil('4 running jobs', async () => (await countWhere(pool, `status = 'RUNNING'`)) === 4);
    worker.kill('SIGTERM');
    expect((await worker.exited).code).toBe(0);
    expect(await countWhere(pool, `status = 'COMPLETED'`)).toBe(4);
    expect(await countWhere(pool, `status = 'PENDING' AND attempts = 0`)).toBe(2);
  });

  it('on SIGTERM past the shutdown timeout stops the jobs and queues them again', async () => {
    await addLegacyJobs(pool, 'test.sleep', [{ ms: 20_000 }, { ms: 20_000 }]);
    const worker = startCli(['worker', '--engine', 'legacy', '--registry', fixtureRegistry, '--poll-ms', '50', '--shutdown-timeout', '0', '--database-url', database.url]);
    await pollUntil('2 running jobs', async () => (await countWhere(pool, `status = 'RUNNING'`)) === 2);
    worker.kill('SIGTERM');
    expect((await worker.exited).code).toBe(0);
    const rows = await jobRows(pool);
    expect(rows.map((r) => [r.status, r.attempts, r.workerId])).toEqual([
      ['PENDING', 0, null],
      ['PENDING', 0, null],
    ]);
    expect(rows[0]?.error).toMatch(/interrupted by worker shutdown/);
  });
});
