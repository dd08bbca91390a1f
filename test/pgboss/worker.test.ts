import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { type JobRegistry } from '../../src/jobs/registry.js';
import { BossWorker } from '../../src/pgboss/worker.js';
import type { TestDatabase } from '../helpers/database.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { bossState, type Producer, withBossWorker } from '../helpers/engines.js';
import { countWhere, fixtureRegistry, jobRows } from '../helpers/jobs.js';
import { recordStatusHistory, statusHistory } from '../helpers/history.js';
import { startCli } from '../helpers/process.js';
import { runCliInProcess } from '../helpers/cli.js';
import { pollUntil } from '../helpers/wait.js';

const fixture = useEngineFixture({ percent: 100 });
let database: TestDatabase;
let pool: Pool;
let registry: JobRegistry;
let producer: Producer;
beforeEach(() => ({ database, pool, registry, producer } = fixture));

/** An in-process worker that supervises often, for tests that need expiry to happen soon. */
const withWorker = <T>(run: (worker: BossWorker) => Promise<T>, types?: string[]) => withBossWorker({ url: database.url, pool, registry }, run, types);

const workerArgs = () => ['worker', '--engine', 'pgboss', '--registry', fixtureRegistry, '--json', '--database-url', database.url];

describe('pg-boss engine', () => {
  it('runs 500 jobs exactly once with two worker processes; every mirror row COMPLETED with its result', async () => {
    const results = await producer.manager.enqueueMany('test.record', Array.from({ length: 500 }, (_, i) => ({ payload: { tag: String(i) } })));
    expect(results.every((r) => r.engine === 'PGBOSS')).toBe(true);
    const workers = [startCli(workerArgs()), startCli(workerArgs())];
    await pollUntil('500 completed mirrors', async () => (await countWhere(pool, `status = 'COMPLETED'`)) === 500, { timeoutMs: 120_000 });
    for (const worker of workers) worker.kill('SIGTERM');
    expect((await Promise.all(workers.map((w) => w.exited))).map((e) => e.code)).toEqual([0, 0]);

    const deliveries = await pool.query<{ n: string; distinct: string }>(`SELECT count(*) AS n, count(DISTINCT "jobId") AS distinct FROM "DemoDelivery"`);
    expect(deliveries.rows[0]).toEqual({ n: '500', distinct: '500' });
    const boss = await pool.query<{ state: string; n: string }>(`SELECT state, count(*) AS n FROM pgboss.job WHERE name = 'test.record' GROUP BY 1`);
    expect(boss.rows).toEqual([{ state: 'completed', n: '500' }]);
    expect(await countWhere(pool, `engine = 'PGBOSS' AND status = 'COMPLETED' AND attempts = 1 AND result ? 'tag' AND "pgbossJobId" = id`)).toBe(500);
  }, 180_000);

  it('mirrors a job that fails twice as PENDING between attempts, never FAILED, and COMPLETED with attempts 3', async () => {
    await recordStatusHistory(pool);
    const { id } = await producer.manager.enqueue('test.fail-times', { times: 2 });
    await withWorker(() => pollUntil('completion', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'COMPLETED'));
    const [row] = await jobRows(pool, 'id = $1', [id]);
    expect(row).toMatchObject({ status: 'COMPLETED', attempts: 3, result: { succeededOnAttempt: 3 } });
    // Every status the row took, as recorded by a trigger: no FAILED, however brief.
    expect((await statusHistory(pool, id)).map((change) => [change.status, change.attempts])).toEqual([
      ['PENDING', 0],
      ['RUNNING', 1],
      ['PENDING', 1],
      ['RUNNING', 2],
      ['PENDING', 2],
      ['RUNNING', 3],
      ['COMPLETED', 3],
    ]);
    expect(await bossState(pool, 'test.fail-times', id)).toEqual({ state: 'completed', retry_count: 2 });
  });

  it('dead-letters a job that always fails, mirrors FAILED, and dlq retry runs it again', async () => {
    const { id } = await producer.manager.enqueue('test.fail-until-released', {});
    await withWorker(() => pollUntil('final failure', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'FAILED'));
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ attempts: 2, error: 'dependency not released yet' });
    expect(await bossState(pool, 'test.fail-until-released', id)).toMatchObject({ state: 'failed' });

    const list = await runCliInProcess(['dlq', 'list', '--json', '--registry', fixtureRegistry, '--database-url', database.url]);
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout).deadLetters).toMatchObject([{ jobId: id, type: 'test.fail-until-released', error: { message: 'dependency not released yet' } }]);

    await pool.query(`INSERT INTO "DemoDelivery" ("jobId", engine) VALUES ('release', 'test')`);
    const retry = await runCliInProcess(['dlq', 'retry', '--type', 'test.fail-until-released', '--json', '--registry', fixtureRegistry, '--database-url', database.url]);
    expect(retry.code, retry.stderr).toBe(0);
    expect(JSON.parse(retry.stdout)).toEqual({ retried: 1, jobs: [id], notRetried: [] });
    await withWorker(() => pollUntil('completion after dlq retry', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'COMPLETED'));
    expect(JSON.parse((await runCliInProcess(['dlq', 'list', '--json', '--registry', fixtureRegistry, '--database-url', database.url])).stdout).deadLetters).toEqual([]);
  });

  it('fails a NonRetryableError at once, without retries', async () => {
    const { id } = await producer.manager.enqueue('test.nonretryable', {});
    await withWorker(() => pollUntil('failure', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'FAILED'));
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ attempts: 1, error: 'record not found' });
    expect(await bossState(pool, 'test.nonretryable', id)).toEqual({ state: 'failed', retry_count: 0 });
  });

  it('never completes the pg-boss job when its mirror update fails (one transaction)', async () => {
    await pool.query(`ALTER TABLE "Job" ADD CONSTRAINT no_noop_completion CHECK (NOT (type = 'test.noop' AND status = 'COMPLETED'))`);
    const { id } = await producer.manager.enqueue('test.noop', {});
    await withWorker(() => pollUntil('a retry after the failed commit', async () => ((await bossState(pool, 'test.noop', id))?.retry_count ?? 0) >= 1));
    expect((await bossState(pool, 'test.noop', id))?.state).not.toBe('completed');
    expect((await jobRows(pool, 'id = $1', [id]))[0]?.status).not.toBe('COMPLETED');

    // The constraint lifted, the same job completes and both sides agree.
    await pool.query(`ALTER TABLE "Job" DROP CONSTRAINT no_noop_completion`);
    await withWorker(() => pollUntil('completion', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'COMPLETED'));
    expect((await bossState(pool, 'test.noop', id))?.state).toBe('completed');
  });

  it('on SIGTERM lets jobs in flight finish and exits 0', async () => {
    await producer.manager.enqueueMany('test.sleep', Array.from({ length: 4 }, () => ({ payload: { ms: 1000 } })));
    const worker = startCli(workerArgs());
    await pollUntil('4 running mirrors', async () => (await countWhere(pool, `status = 'RUNNING'`)) === 4);
    worker.kill('SIGTERM');
    expect((await worker.exited).code).toBe(0);
    expect(await countWhere(pool, `status = 'COMPLETED'`)).toBe(4);
  });

  it('runs a job again after its worker is killed with -9, and the mirror converges', async () => {
    const { id } = await producer.manager.enqueue('test.sleep-short', { ms: 1500 });
    const victim = startCli(workerArgs());
    await pollUntil('the job to start', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'RUNNING');
    victim.kill('SIGKILL');
    await victim.exited;
    await withWorker(() => pollUntil('completion on another worker', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'COMPLETED', { timeoutMs: 45_000 }));
    expect((await jobRows(pool, 'id = $1', [id]))[0]?.attempts).toBe(2);
    expect(await bossState(pool, 'test.sleep-short', id)).toEqual({ state: 'completed', retry_count: 1 });
  });
});

