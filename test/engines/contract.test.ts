// One contract, both engines: what cutover promises of a job whichever engine runs it, run
// against each engine's real worker on a real database. An engine-specific detail (retries as new
// rows on legacy, dead letters on pg-boss) stays in that engine's own test file; what is here
// holds for both alike.
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { maxAttempts } from '../../src/jobs/define.js';
import { LegacyRunner, type RunnerStats } from '../../src/legacy/runner.js';
import { startBoss } from '../../src/pgboss/boss.js';
import { listDeadLetters } from '../../src/pgboss/dlq.js';
import { BossWorker, type BossWorkerStats } from '../../src/pgboss/worker.js';
import { changeFlag } from '../../src/state/flags.js';
import { legacyJob } from '../factories/legacy.js';
import { pgbossJob } from '../factories/pgboss.js';
import { repoRoot } from '../helpers/cli.js';
import { bossState, quietLog, setPercent } from '../helpers/engines.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { jobRows, type JobRow } from '../helpers/jobs.js';
import { pollUntil } from '../helpers/wait.js';

const fixture = useEngineFixture({ registry: join(repoRoot, 'test', 'engines', 'contract-registry.mjs') });

type EngineName = 'legacy' | 'pgboss';

/** A job's attempts as one list, first to last: legacy retries are new rows of one chain, pg-boss's the same row again. */
const chainOf = (id: string): Promise<JobRow[]> => jobRows(fixture.pool, `id = $1 OR "originalJobId" = $1`, [id]);
const lastOf = async (id: string): Promise<JobRow> => (await chainOf(id)).at(-1)!;
const deliveries = async (id: string): Promise<string[]> =>
  (await fixture.pool.query<{ engine: string }>(`SELECT engine FROM "DemoDelivery" WHERE "jobId" = $1`, [id])).rows.map((row) => row.engine);

/** Runs the legacy runner in process until `until` holds, then stops it. */
async function withLegacyRunner(until: () => Promise<boolean>): Promise<RunnerStats> {
  const { pool, database, registry } = fixture;
  const controller = new AbortController();
  const done = new LegacyRunner({ pool, databaseUrl: database.url, registry, log: quietLog, pollMs: 20 }).run(controller.signal);
  try {
    await pollUntil('the legacy runner to get there', async () => until(), { timeoutMs: 45_000 });
  } finally {
    controller.abort();
  }
  return done;
}

/** Runs a pg-boss worker in process until `until` holds, then stops it gracefully. */
async function withPgbossWorker(until: () => Promise<boolean>): Promise<BossWorkerStats> {
  const { pool, database, registry } = fixture;
  const boss = await startBoss({ databaseUrl: database.url, log: quietLog, role: 'worker', superviseIntervalSeconds: 1 });
  const worker = new BossWorker({ boss, pool, registry, log: quietLog, pollingIntervalSeconds: 0.5 });
  await worker.start();
  let stats: BossWorkerStats;
  try {
    await pollUntil('the pg-boss worker to get there', async () => until(), { timeoutMs: 45_000 });
  } finally {
    stats = await worker.stop(5000);
  }
  return stats;
}

interface Engine {
  /** Enqueues through RolloutManager, routed to this engine; returns the row id. */
  enqueue(type: string, payload: object): Promise<string>;
  /** A job of `type` that may not start before `due` (a retry backoff, a schedule). */
  enqueueAt(type: string, payload: object, due: Date): Promise<string>;
  /** This engine's worker, running until `until` holds. */
  runUntil(until: () => Promise<boolean>): Promise<unknown>;
  /** What this engine's queue holds of the job once it ended for good. */
  afterFailure(type: string, id: string): Promise<void>;
}

const engines: Record<EngineName, Engine> = {
  legacy: {
    enqueue: async (type, payload) => (await fixture.producer.manager.enqueue(type, payload)).id,
    enqueueAt: (type, payload, due) => legacyJob(fixture.pool, { type, payload, runAfter: due, maxAttempts: maxAttempts(fixture.registry.require(type)) }),
    runUntil: withLegacyRunner,
    afterFailure: async () => undefined,
  },
  pgboss: {
    enqueue: async (type, payload) => (await fixture.producer.manager.enqueue(type, payload)).id,
    enqueueAt: async (type, payload, due) =>
      (await pgbossJob({ boss: fixture.producer.boss, pool: fixture.pool }, { queue: type, data: payload, startAfter: due, tracked: { maxAttempts: maxAttempts(fixture.registry.require(type)) } })).id,
    runUntil: withPgbossWorker,
    // Failed for good in pg-boss too, with its dead-letter copy waiting in the type's dead letter queue.
    afterFailure: async (type, id) => {
      expect((await bossState(fixture.pool, type, id))?.state).toBe('failed');
      await pollUntil('the dead-letter copy', async () => (await listDeadLetters(fixture.pool, [type])).some((dead) => dead.jobId === id));
    },
  },
};

describe.each(['legacy', 'pgboss'] as const)('engine contract: %s', (name) => {
  const engine = engines[name];
  const ENGINE = name === 'legacy' ? 'LEGACY' : 'PGBOSS';
  beforeEach(async () => setPercent(fixture.pool, name === 'pgboss' ? 100 : 0));

  it('records a success once, with its result', async () => {
    const id = await engine.enqueue('test.record', { tag: 'once' });
    await engine.runUntil(async () => (await lastOf(id)).status === 'COMPLETED');
    expect(await chainOf(id)).toMatchObject([{ id, engine: ENGINE, status: 'COMPLETED', attempts: 1, result: { tag: 'once' }, error: null }]);
    expect(await deliveries(id)).toEqual([`${ENGINE}:once`]);
  });

  it('a success whose result JSON cannot encode is final: a BigInt kept as its decimal string, a cycle dropped, run once', async () => {
    const id = await engine.enqueue('contract.bigint', {});
    await engine.runUntil(async () => (await lastOf(id)).status === 'COMPLETED');
    expect(await chainOf(id)).toMatchObject([{ id, status: 'COMPLETED', attempts: 1, result: { count: '12345678901234567890' } }]);
    expect(await deliveries(id)).toEqual([`${ENGINE}:bigint`]);
  });

  it('retries a failing job up to its limit, then it ends FAILED', async () => {
    const limit = maxAttempts(fixture.registry.require('test.fail-times'));
    const id = await engine.enqueue('test.fail-times', { times: 99 });
    await engine.runUntil(async () => {
      const last = await lastOf(id);
      return last.status === 'FAILED' && last.attempts === limit;
    });
    expect(await lastOf(id)).toMatchObject({ status: 'FAILED', attempts: limit, error: `failing attempt ${limit}` });
    // Every attempt but the last ended in a retry: nothing runs after it.
    expect((await chainOf(id)).every((row) => row.status === 'FAILED' || row.status === 'PENDING')).toBe(true);
    await engine.afterFailure('test.fail-times', id);
  });

  it('fails a NonRetryableError at once, with no retry', async () => {
    const id = await engine.enqueue('test.nonretryable', {});
    await engine.runUntil(async () => (await lastOf(id)).status === 'FAILED');
    expect(await chainOf(id)).toMatchObject([{ id, status: 'FAILED', attempts: 1, error: 'record not found' }]);
    await engine.afterFailure('test.nonretryable', id);
  });

  it('holds a job scheduled for later until it is due, while others run', async () => {
    const due = new Date(Date.now() + 4000);
    const later = await engine.enqueueAt('test.record', { tag: 'later' }, due);
    const now = await engine.enqueue('test.record', { tag: 'now' });
    await engine.runUntil(async () => {
      if ((await lastOf(now)).status !== 'COMPLETED') return false;
      // Checked while the worker still runs: the job that is not due yet has not started.
      if (Date.now() < due.getTime() - 500) expect(await lastOf(later)).toMatchObject({ status: 'PENDING', attempts: 0 });
      return (await lastOf(later)).status === 'COMPLETED';
    });
    const { rows } = await fixture.pool.query<{ started: Date }>(`SELECT "startedAt" AT TIME ZONE 'UTC' AS started FROM "Job" WHERE id = $1`, [later]);
    expect(rows[0]!.started.getTime()).toBeGreaterThanOrEqual(due.getTime());
    expect(await deliveries(later)).toEqual([`${ENGINE}:later`]);
  });

  it("hands the handler the row's own id (context.rowId)", async () => {
    const id = await engine.enqueue('contract.echo', {});
    await engine.runUntil(async () => (await lastOf(id)).status === 'COMPLETED');
    expect((await lastOf(id)).result).toEqual({ rowId: id, jobId: id, engine: ENGINE, attempt: 1 });
  });

  it('under its kill switch a job runs once, on legacy (a pg-boss worker hands it back unrun)', async () => {
    const id = await engine.enqueue('test.record', { tag: 'killed' });
    await changeFlag(fixture.pool, { jobType: 'test.record', killSwitch: true }, { actor: 'test', action: 'flag.kill' });
    const stats = await engine.runUntil(async () => (await lastOf(id)).engine === 'LEGACY');
    if (name === 'pgboss') {
      expect(stats).toMatchObject({ handedBack: 1, completed: 0 });
      expect(await lastOf(id)).toMatchObject({ engine: 'LEGACY', status: 'PENDING', routeReason: 'handedback', attempts: 0 });
      expect(await bossState(fixture.pool, 'test.record', id)).toBeUndefined();
    }
    await withLegacyRunner(async () => (await lastOf(id)).status === 'COMPLETED');
    expect(await chainOf(id)).toMatchObject([{ id, engine: 'LEGACY', status: 'COMPLETED', attempts: 1, result: { tag: 'killed' } }]);
    expect(await deliveries(id)).toEqual(['LEGACY:killed']);
  });
});
