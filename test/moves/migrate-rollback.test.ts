import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import type { TestDatabase } from '../helpers/database.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { setPercent, type Producer } from '../helpers/engines.js';
import { ownership } from '../helpers/invariants.js';
import { addLegacyJobs, countWhere, fixtureRegistry } from '../helpers/jobs.js';
import { runCliInProcess } from '../helpers/cli.js';
import { startCli } from '../helpers/process.js';
import { pollUntil } from '../helpers/wait.js';

const fixture = useEngineFixture({});
let database: TestDatabase;
let pool: Pool;
let producer: Producer;
beforeEach(() => ({ database, pool, producer } = fixture));

const cli = (...args: string[]) => runCliInProcess([...args, '--registry', fixtureRegistry, '--database-url', database.url]);
const cliProcess = (...args: string[]) => startCli([...args, '--registry', fixtureRegistry, '--database-url', database.url]);

async function deliveriesPerJob(): Promise<{ jobs: number; deliveries: number }> {
  const { rows } = await pool.query<{ jobs: string; deliveries: string }>(`SELECT count(DISTINCT "jobId") AS jobs, count(*) AS deliveries FROM "DemoDelivery"`);
  return { jobs: Number(rows[0]?.jobs), deliveries: Number(rows[0]?.deliveries) };
}

describe('migrate', () => {
  it('moves 10k rows of 3 types with a legacy runner polling and two migrates at once: each job in exactly one system', async () => {
    await addLegacyJobs(pool, 'test.record', Array.from({ length: 4000 }, (_, i) => ({ tag: `r${i}` })));
    await addLegacyJobs(pool, 'test.noop', Array.from({ length: 3000 }, () => ({})));
    await addLegacyJobs(pool, 'test.fail-times', Array.from({ length: 3000 }, () => ({ times: 0 })));
    const runner = cliProcess('worker', '--engine', 'legacy', '--concurrency', '4', '--poll-ms', '20');
    await pollUntil('the runner to take some jobs', async () => (await countWhere(pool, `status <> 'PENDING'`)) > 0);
    const migrates = await Promise.all([cli('migrate', '--batch', '200', '--json'), cli('migrate', '--batch', '200', '--json')]);
    runner.kill('SIGTERM');
    expect((await runner.exited).code).toBe(0);

    for (const m of migrates) expect(m.code, m.stderr).toBe(0);
    const summaries = migrates.map((m) => JSON.parse(m.stdout) as { moved: number; quarantined: number });
    expect(summaries.every((s) => s.quarantined === 0)).toBe(true);
    const report = await ownership(pool);
    expect(report).toMatchObject({ rows: 10_000, lost: 0, inBoth: 0, orphans: 0 });
    expect(report.pgbossRows).toBe(summaries[0]!.moved + summaries[1]!.moved);
    expect(report.pgbossJobs).toBe(report.pgbossRows);
    // Whatever the legacy runner took, it ran on legacy and was not moved.
    expect(await countWhere(pool, `engine = 'PGBOSS' AND (status <> 'PENDING' OR attempts <> 0)`)).toBe(0);
    expect(await countWhere(pool, `engine = 'LEGACY' AND status = 'PENDING'`)).toBe(0);
    expect(await countWhere(pool, `engine = 'PGBOSS' AND "routeReason" = 'migrated' AND "pgbossJobId" = id`)).toBe(report.pgbossRows);
  }, 180_000);

  it('after SIGKILL mid-run, a second run moves exactly the rest', async () => {
    await addLegacyJobs(pool, 'test.noop', Array.from({ length: 20_000 }, () => ({})));
    const first = cliProcess('migrate', '--batch', '50');
    await pollUntil('some batches', async () => (await countWhere(pool, `engine = 'PGBOSS'`)) >= 500, { intervalMs: 5 });
    first.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    const movedBefore = await countWhere(pool, `engine = 'PGBOSS'`);
    expect(movedBefore).toBeLessThan(20_000);
    expect(await ownership(pool)).toMatchObject({ lost: 0, inBoth: 0, orphans: 0 });

    const second = await cli('migrate', '--batch', '1000', '--json');
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout).moved).toBe(20_000 - movedBefore);
    expect(await ownership(pool)).toMatchObject({ rows: 20_000, pgbossRows: 20_000, pgbossJobs: 20_000, lost: 0, inBoth: 0, orphans: 0 });
    expect(JSON.parse((await cli('migrate', '--json')).stdout).moved).toBe(0);
  });

  it('quarantines unknown types and invalid payloads, reports them, and leaves them untouched', async () => {
    const [unknown] = await addLegacyJobs(pool, 'test.who-knows', [{}]);
    const [invalid] = await addLegacyJobs(pool, 'test.record', [{ tag: 42 }]);
    await addLegacyJobs(pool, 'test.record', [{ tag: 'fine' }]);

    const dry = await cli('migrate', '--dry-run', '--json');
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, moved: 1, quarantined: 2 });
    expect(await countWhere(pool, `engine = 'PGBOSS'`)).toBe(0);
    expect(Number((await pool.query(`SELECT count(*) AS n FROM "MigrationQuarantine"`)).rows[0].n)).toBe(0);

    const run = await cli('migrate', '--json');
    const summary = JSON.parse(run.stdout);
    expect(summary).toMatchObject({ moved: 1, quarantined: 2 });
    expect(summary.quarantine).toEqual(
      expect.arrayContaining([
        { jobId: unknown, jobType: 'test.who-knows', reason: expect.stringMatching(/unknown job type 'test.who-knows'/) },
        { jobId: invalid, jobType: 'test.record', reason: expect.stringMatching(/invalid payload for test.record: tag/) },
      ]),
    );
    expect(await countWhere(pool, `id = ANY($1::uuid[]) AND engine = 'LEGACY' AND status = 'PENDING'`, [[unknown, invalid]])).toBe(2);
    expect(JSON.parse((await cli('migrate', '--json')).stdout)).toMatchObject({ moved: 0, quarantined: 0 });
  }, 120_000); // four CLI runs: a loaded 2-core machine needs more than the default minute

  it('rejects bad arguments with exit 2', async () => {
    expect((await cli('migrate', '--batch', '0')).code).toBe(2);
    expect((await cli('migrate', '--older-than', 'yesterday')).code).toBe(2);
    expect((await cli('migrate', '--type', 'test.nope')).code).toBe(2);
  });
});

describe('rollback', () => {
  it('moves unstarted pg-boss jobs back while workers run; everything completes once, on legacy after the rollback', async () => {
    await setPercent(pool, 100);
    await producer.manager.enqueueMany('test.record-slow', Array.from({ length: 60 }, (_, i) => ({ payload: { tag: `t${i}`, ms: 150 } })));
    const pgbossWorker = cliProcess('worker', '--engine', 'pgboss', '--concurrency', '2');
    await pollUntil('pg-boss to start working', async () => (await countWhere(pool, `status = 'COMPLETED'`)) >= 2);

    const result = await cli('rollback', '--type', 'test.record-slow', '--drain', '--timeout', '30', '--yes', '--json');
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary.moved).toBeGreaterThan(0);
    expect(summary).toMatchObject({ drained: true, stillActive: [], killSwitch: ['test.record-slow'] });
    const { rows } = await pool.query(`SELECT count(*) AS n FROM pgboss.job WHERE name = 'test.record-slow' AND state IN ('created', 'retry')`);
    expect(rows[0].n).toBe('0');

    // New jobs now go to legacy too (kill switch), and the legacy runner finishes everything.
    await producer.flags.invalidate();
    expect((await producer.manager.enqueue('test.record-slow', { tag: 'after', ms: 0 })).engine).toBe('LEGACY');
    const legacy = cliProcess('worker', '--engine', 'legacy', '--concurrency', '8', '--poll-ms', '20');
    await pollUntil('all 61 completed', async () => (await countWhere(pool, `status = 'COMPLETED'`)) === 61, { timeoutMs: 120_000 });
    legacy.kill('SIGTERM');
    pgbossWorker.kill('SIGTERM');
    expect((await Promise.all([legacy.exited, pgbossWorker.exited])).map((e) => e.code)).toEqual([0, 0]);

    expect(await deliveriesPerJob()).toEqual({ jobs: 61, deliveries: 61 });
    expect(await countWhere(pool, `"routeReason" = 'rolledback' AND engine = 'LEGACY'`)).toBe(summary.moved);
    expect(await ownership(pool)).toMatchObject({ lost: 0, inBoth: 0, orphans: 0 });
    const history = JSON.parse((await runCliInProcess(['rollout', 'history', '--json', '--database-url', database.url])).stdout).events;
    expect(history.map((e: { action: string }) => e.action)).toEqual(expect.arrayContaining(['rollback', 'flag.kill']));
  }, 180_000);

  it('refuses without a terminal or --yes, and is idempotent', async () => {
    const refused = await cli('rollback');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/pass --yes/);
    expect((await cli('rollback', '--yes', '--json')).code).toBe(0);
    expect(JSON.parse((await cli('rollback', '--yes', '--json')).stdout).moved).toBe(0);
  });

  it('survives a migrate → rollback → migrate round trip with every job exactly once in one system', async () => {
    await addLegacyJobs(pool, 'test.record', Array.from({ length: 500 }, (_, i) => ({ tag: `x${i}` })));
    expect(JSON.parse((await cli('migrate', '--json')).stdout).moved).toBe(500);
    expect(JSON.parse((await cli('rollback', '--yes', '--json')).stdout).moved).toBe(500);
    expect(await ownership(pool)).toMatchObject({ rows: 500, pgbossRows: 0, pgbossJobs: 0, lost: 0, inBoth: 0, orphans: 0 });
    // Under the rollback's kill switch a migrate stops before its first batch; released, it moves.
    // (The kill switch is on `*`, so the message names every type this run would lock, test.record among them.)
    const stopped = await cli('migrate', '--json');
    expect(stopped.code).toBe(1);
    expect(JSON.parse(stopped.stdout)).toMatchObject({ moved: 0, stoppedBy: expect.stringMatching(/^kill switch on for .*\btest\.record\b/) });
    expect((await runCliInProcess(['rollout', 'unkill', '--database-url', database.url])).code).toBe(0);
    expect(JSON.parse((await cli('migrate', '--json')).stdout).moved).toBe(500);
    expect(await ownership(pool)).toMatchObject({ rows: 500, pgbossRows: 500, pgbossJobs: 500, lost: 0, inBoth: 0, orphans: 0 });

    const worker = cliProcess('worker', '--engine', 'pgboss');
    await pollUntil('all completed', async () => (await countWhere(pool, `status = 'COMPLETED'`)) === 500, { timeoutMs: 120_000 });
    worker.kill('SIGTERM');
    expect((await worker.exited).code, worker.stderr()).toBe(0);
    expect(await deliveriesPerJob()).toEqual({ jobs: 500, deliveries: 500 });
  }, 180_000);

  it('lets only one of rollback and migrate hold a job type at once', async () => {
    const { lockJobTypes } = await import('../../src/moves/locks.js');
    const held = await lockJobTypes(database.url, ['test.noop'], 'rollback');
    try {
      const blocked = await cli('migrate', '--type', 'test.noop');
      expect(blocked.code).toBe(1);
      expect(blocked.stderr).toMatch(/a rollback is running for job type 'test.noop'/);
    } finally {
      await held.release();
    }
  });
});
