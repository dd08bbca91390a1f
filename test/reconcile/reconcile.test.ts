import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import type { TestDatabase } from '../helpers/database.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { bossState, setPercent, type Producer } from '../helpers/engines.js';
import { addLegacyJobs, countWhere, fixtureRegistry, jobRows } from '../helpers/jobs.js';
import { runCliInProcess } from '../helpers/cli.js';
import { startCli } from '../helpers/process.js';
import { pollUntil } from '../helpers/wait.js';
import { onLastAttempt, startedAgo } from '../factories/pgboss.js';

const fixture = useEngineFixture({ percent: 100 });
let database: TestDatabase;
let pool: Pool;
let producer: Producer;
beforeEach(() => ({ database, pool, producer } = fixture));

interface Report {
  findings: Record<string, { count: number; sample: { id: string; type: string; detail: string }[] }>;
  total: number;
  fixed: { lost: number; orphan: number; drift: number } | null;
  comparison: {
    type: string;
    verdict: string;
    legacy: { jobs: number; succeeded: number; meanAttempts: number; latencySeconds: { p50: number; p95: number; p99: number } };
    pgboss: { jobs: number; succeeded: number; meanAttempts: number; latencySeconds: { p50: number; p95: number; p99: number } };
  }[];
}

async function reconcileCli(...args: string[]): Promise<{ code: number | null; report: Report }> {
  const result = await runCliInProcess(['reconcile', '--grace', '0', '--json', '--registry', fixtureRegistry, '--database-url', database.url, ...args]);
  expect(result.stdout, result.stderr).not.toBe('');
  return { code: result.code, report: JSON.parse(result.stdout) as Report };
}

async function auditActions(): Promise<string[]> {
  const { rows } = await pool.query<{ action: string }>(`SELECT action FROM "RolloutEvent" WHERE action LIKE 'reconcile.%' ORDER BY id`);
  return rows.map((r) => r.action);
}

/** Takes one job off a pg-boss queue as a worker would, without running it. */
async function fetchOne(type: string) {
  const [job] = await producer.boss.fetch(type);
  if (!job) throw new Error(`no ${type} job to fetch`);
  return job;
}

describe('consistency classes', () => {
  it('lost: a PGBOSS row whose pg-boss job vanished; --fix re-sends it with the same id', async () => {
    const { id } = await producer.manager.enqueue('test.noop', {});
    await producer.boss.deleteJob('test.noop', id);
    const found = await reconcileCli();
    expect(found.code).toBe(1);
    expect(found.report.findings.lost).toMatchObject({ count: 1, sample: [{ id, type: 'test.noop' }] });

    const fixed = await reconcileCli('--fix');
    expect(fixed.report.fixed).toEqual({ lost: 1, orphan: 0, drift: 0 });
    expect(fixed.report.total).toBe(0);
    expect(fixed.code).toBe(0);
    expect(await bossState(pool, 'test.noop', id)).toMatchObject({ state: 'created' });
    expect(await auditActions()).toEqual(['reconcile.fix.lost']);
  });

  it('lost under a kill switch: handed back to legacy instead', async () => {
    const { id } = await producer.manager.enqueue('test.noop', {});
    await producer.boss.deleteJob('test.noop', id);
    await runCliInProcess(['rollout', 'kill', '--type', 'test.noop', '--registry', fixtureRegistry, '--database-url', database.url]);
    const fixed = await reconcileCli('--fix');
    expect(fixed.report.fixed?.lost).toBe(1);
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ engine: 'LEGACY', status: 'PENDING', routeReason: 'rolledback' });
    expect(await bossState(pool, 'test.noop', id)).toBeUndefined();
  });

  it('orphan: a pg-boss job without a row; --fix adopts it', async () => {
    const id = await producer.boss.send('test.noop', { from: 'elsewhere' });
    const found = await reconcileCli();
    expect(found.report.findings.orphan).toMatchObject({ count: 1, sample: [{ id }] });
    const fixed = await reconcileCli('--fix');
    expect(fixed.report.fixed?.orphan).toBe(1);
    expect(fixed.report.total).toBe(0);
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ engine: 'PGBOSS', status: 'PENDING', routeReason: 'adopted', type: 'test.noop' });
    expect(await auditActions()).toEqual(['reconcile.fix.orphan']);
  });

  it('drift: pg-boss completed while the row says RUNNING; --fix copies the final state', async () => {
    const { id } = await producer.manager.enqueue('test.noop', {});
    const job = await fetchOne('test.noop');
    // An earlier run's error, which a success empties on this table as both engines' completion does.
    await pool.query(`UPDATE "Job" SET status = 'RUNNING', error = 'an earlier run failed' WHERE id = $1`, [id]);
    await producer.boss.complete('test.noop', job.id, { done: 'elsewhere' });
    const found = await reconcileCli();
    expect(found.report.findings.drift).toMatchObject({ count: 1, sample: [{ id, detail: 'row RUNNING, pg-boss completed' }] });
    const fixed = await reconcileCli('--fix');
    expect(fixed.report.fixed?.drift).toBe(1);
    expect(fixed.report.total).toBe(0);
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ status: 'COMPLETED', result: { done: 'elsewhere' }, attempts: 1, error: null });
    expect(await auditActions()).toEqual(['reconcile.fix.drift']);
  });

  it('drift that is not safe to fix (row COMPLETED, pg-boss still active) is reported and left', async () => {
    const { id } = await producer.manager.enqueue('test.noop', {});
    await fetchOne('test.noop');
    await pool.query(`UPDATE "Job" SET status = 'COMPLETED' WHERE id = $1`, [id]);
    const fixed = await reconcileCli('--fix');
    expect(fixed.code).toBe(1);
    expect(fixed.report.fixed?.drift).toBe(0);
    expect(fixed.report.findings.drift!.count).toBe(1);
  });

  it('drift to failed: pg-boss failed the job for good while the row says RUNNING; --fix copies FAILED, the error and the attempts', async () => {
    const { id } = await producer.manager.enqueue('test.noop', {});
    const job = await fetchOne('test.noop');
    await pool.query(`UPDATE "Job" SET status = 'RUNNING', attempts = 1, "workerId" = 'gone' WHERE id = $1`, [id]);
    // Its last attempt: pg-boss fails it for good (the worker died before writing the row).
    await onLastAttempt({ pool }, { queue: 'test.noop', id });
    await producer.boss.fail('test.noop', job.id, { message: 'boom' });
    expect(await bossState(pool, 'test.noop', id)).toMatchObject({ state: 'failed' });

    const found = await reconcileCli();
    expect(found.code).toBe(1);
    expect(found.report.findings.drift).toMatchObject({ count: 1, sample: [{ id, detail: 'row RUNNING, pg-boss failed' }] });
    const fixed = await reconcileCli('--fix');
    expect(fixed.report.fixed).toEqual({ lost: 0, orphan: 0, drift: 1 });
    expect(fixed.code).toBe(0);
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ status: 'FAILED', error: 'boom', attempts: 1, workerId: null });
    expect(await countWhere(pool, `id = $1 AND "completedAt" IS NOT NULL`, [id])).toBe(1);
    expect(await auditActions()).toEqual(['reconcile.fix.drift']);
  });

  it('drift to cancelled: pg-boss cancelled a job the row still says PENDING; --fix fails the row and says why', async () => {
    const { id } = await producer.manager.enqueue('test.noop', {});
    await producer.boss.cancel('test.noop', id);
    const found = await reconcileCli();
    expect(found.report.findings.drift).toMatchObject({ count: 1, sample: [{ id, detail: 'row PENDING, pg-boss cancelled' }] });
    const fixed = await reconcileCli('--fix');
    expect(fixed.report.fixed?.drift).toBe(1);
    expect(fixed.report.total).toBe(0);
    expect(fixed.code).toBe(0);
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ status: 'FAILED', error: 'pg-boss cancelled' });
    expect(await auditActions()).toEqual(['reconcile.fix.drift']);
  });

  it('drift back to PENDING: the row says RUNNING but pg-boss will retry the job (its worker died); --fix makes the row wait again', async () => {
    const { id } = await producer.manager.enqueue('test.noop', {});
    const job = await fetchOne('test.noop');
    // What the worker wrote when it started attempt 1, before it died.
    await pool.query(`UPDATE "Job" SET status = 'RUNNING', attempts = 1, "workerId" = 'dead-worker', "startedAt" = now() WHERE id = $1`, [id]);
    // pg-boss expired that attempt: the job waits for its retry.
    await producer.boss.fail('test.noop', job.id, { message: 'expired' });
    expect(await bossState(pool, 'test.noop', id)).toEqual({ state: 'retry', retry_count: 0 });

    const found = await reconcileCli();
    expect(found.report.findings.drift).toMatchObject({ count: 1, sample: [{ id, detail: 'row RUNNING, pg-boss retry' }] });
    const fixed = await reconcileCli('--fix');
    expect(fixed.report.fixed?.drift).toBe(1);
    expect(fixed.code).toBe(0);
    // One attempt was made (as the worker's own record of a failed attempt, and rollback, count it).
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ status: 'PENDING', engine: 'PGBOSS', workerId: null, attempts: 1 });
    expect(await bossState(pool, 'test.noop', id)).toEqual({ state: 'retry', retry_count: 0 });
    expect(await auditActions()).toEqual(['reconcile.fix.drift']);
  });

  it('stuck: RUNNING past its timeout on either engine; reported, never fixed', async () => {
    const [legacyId] = await addLegacyJobs(pool, 'test.hang', [{}]);
    await pool.query(`UPDATE "Job" SET status = 'RUNNING', "startedAt" = (now() AT TIME ZONE 'UTC') - interval '1 hour' WHERE id = $1`, [legacyId]);
    const { id: bossId } = await producer.manager.enqueue('test.hang', {});
    await fetchOne('test.hang');
    await startedAgo({ pool }, { queue: 'test.hang', id: bossId }, 3600);
    await pool.query(`UPDATE "Job" SET status = 'RUNNING' WHERE id = $1`, [bossId]);
    const { code, report } = await reconcileCli('--fix');
    expect(code).toBe(1);
    expect(report.findings.stuck!.count).toBe(2);
    expect(report.findings.stuck!.sample.map((s) => s.id).sort()).toEqual([legacyId, bossId].sort());
    expect(report.fixed).toEqual({ lost: 0, orphan: 0, drift: 0 });
  });

  it('double: one job that ran on both engines; reported, never fixed', async () => {
    const { id } = await producer.manager.enqueue('test.noop', {});
    const job = await fetchOne('test.noop');
    await producer.boss.complete('test.noop', job.id, {});
    await pool.query(`UPDATE "Job" SET engine = 'LEGACY', status = 'COMPLETED', "pgbossJobId" = NULL WHERE id = $1`, [id]);
    const { code, report } = await reconcileCli('--fix');
    expect(code).toBe(1);
    expect(report.findings.double).toMatchObject({ count: 1, sample: [{ id, detail: 'legacy COMPLETED and pg-boss completed' }] });
  });

  it('retention: finished jobs whose pg-boss rows were deleted are not lost', async () => {
    const { id } = await producer.manager.enqueue('test.noop', {});
    const job = await fetchOne('test.noop');
    await producer.boss.complete('test.noop', job.id, {});
    await pool.query(`UPDATE "Job" SET status = 'COMPLETED', "completedAt" = now() WHERE id = $1`, [id]);
    await producer.boss.deleteStoredJobs('test.noop'); // what deleteAfterSeconds does
    const { code, report } = await reconcileCli();
    expect(report.total).toBe(0);
    expect(code).toBe(0);
  });

  it('rejects bad input with exit 2', async () => {
    expect((await runCliInProcess(['reconcile', '--since', 'forever', '--database-url', database.url])).code).toBe(2);
    expect((await runCliInProcess(['reconcile', '--type', 'test.nope', '--registry', fixtureRegistry, '--database-url', database.url])).code).toBe(2);
  });
});

function percentile(sorted: number[], p: number): number {
  const rank = p * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (rank - low);
}

describe('a clean dual run', () => {
  it('200 jobs at 50 %: zero findings, exit 0, and the comparison matches a hand computation', async () => {
    await setPercent(pool, 50);
    await producer.manager.enqueueMany('test.record', Array.from({ length: 200 }, (_, i) => ({ payload: { tag: `d${i}` } })));
    await producer.manager.enqueueMany('test.fail-times', Array.from({ length: 30 }, () => ({ payload: { times: 1 } })));
    const common = ['--registry', fixtureRegistry, '--database-url', database.url];
    const workers = [
      startCli(['worker', '--engine', 'legacy', '--concurrency', '12', '--poll-ms', '20', ...common]),
      startCli(['worker', '--engine', 'pgboss', ...common]),
    ];
    await pollUntil('every chain finished', async () => (await countWhere(pool, `status IN ('PENDING', 'RUNNING')`)) === 0 && (await countWhere(pool, `status = 'COMPLETED'`)) === 230, {
      timeoutMs: 150_000,
      intervalMs: 250,
    });
    for (const worker of workers) worker.kill('SIGTERM');
    expect((await Promise.all(workers.map((w) => w.exited))).map((e) => e.code)).toEqual([0, 0]);

    const { code, report } = await reconcileCli();
    expect(report.total).toBe(0);
    expect(code).toBe(0);

    const record = report.comparison.find((c) => c.type === 'test.record')!;
    for (const engine of ['LEGACY', 'PGBOSS'] as const) {
      const { rows } = await pool.query<{ latency: number }>(
        `SELECT EXTRACT(EPOCH FROM "completedAt" - "createdAt")::float8 AS latency FROM "Job" WHERE type = 'test.record' AND engine = $1 ORDER BY 1`,
        [engine],
      );
      const latencies = rows.map((r) => r.latency);
      const side = engine === 'LEGACY' ? record.legacy : record.pgboss;
      // Enough jobs on each side for a verdict (--min-sample 30) and for distinct percentiles.
      expect(latencies.length).toBeGreaterThan(60);
      expect(side.jobs).toBe(latencies.length);
      expect(side.succeeded).toBe(latencies.length);
      expect(side.meanAttempts).toBe(1);
      expect(side.latencySeconds.p50).toBeCloseTo(percentile(latencies, 0.5), 2);
      expect(side.latencySeconds.p95).toBeCloseTo(percentile(latencies, 0.95), 2);
      expect(side.latencySeconds.p99).toBeCloseTo(percentile(latencies, 0.99), 2);
    }
    expect(record.legacy.jobs + record.pgboss.jobs).toBe(200);
    expect(record.verdict).toBe('same');

    // Retries: a legacy chain of two rows and a pg-boss job run twice are both 2 attempts of one job.
    const retried = report.comparison.find((c) => c.type === 'test.fail-times')!;
    expect(retried.legacy.jobs + retried.pgboss.jobs).toBe(30);
    expect(retried.legacy.jobs).toBeGreaterThan(0);
    expect(retried.pgboss.jobs).toBeGreaterThan(0);
    expect(retried.legacy.meanAttempts).toBe(2);
    expect(retried.pgboss.meanAttempts).toBe(2);
    expect(await countWhere(pool, `type = 'test.fail-times' AND engine = 'LEGACY'`)).toBe(retried.legacy.jobs * 2);

    const status = JSON.parse((await runCliInProcess(['status', '--json', '--database-url', database.url])).stdout);
    expect(status.lastReconcile).toMatchObject({ findings: 0 });
  }, 180_000);
});
