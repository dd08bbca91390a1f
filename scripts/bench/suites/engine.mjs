// The pg-boss engine against bare pg-boss, on the same no-op jobs in the same database:
// cutover's BossWorker (mirror rows committed with each state change) vs a plain `boss.work`
// with the same batch size, burst and metadata, each in its own pg-boss instance. Both drain
// the same backlog, written the same way (RolloutManager.enqueueMany, rows included). And after
// `finalize --tracking off`: jobs with no rows (pg-boss's insert alone), nothing to mirror.
import { startBoss } from '../../../dist/pgboss/boss.js';
import { BossWorker } from '../../../dist/pgboss/worker.js';
import { completedJobs, databaseNow, drainRate, log, NOOP, produce, sideBySide, walBytesSince, walPosition, withDatabase } from '../lib.mjs';

/** The backlog: tracked (rows written as producers write them), or as after `finalize --tracking off` (no rows). */
async function backlog(services, jobs, tracked) {
  if (tracked) return produce(services, { count: jobs });
  for (let n = 0; n < jobs; n += 1000) {
    await services.boss.insert(NOOP, Array.from({ length: Math.min(1000, jobs - n) }, (_, i) => ({ data: { n: n + i } })));
  }
}

/** Drains `jobs` no-op jobs with cutover's engine; jobs/s and WAL bytes per job. */
export async function engineRate(services, concurrency, jobs, { tracked = true } = {}) {
  await backlog(services, jobs, tracked);
  const { pool } = services;
  const boss = await startBoss({ databaseUrl: services.databaseUrl, log, role: 'worker', max: concurrency + 4 });
  const worker = new BossWorker({ boss, pool, registry: services.registry, log, concurrency });
  const { n: before } = await completedJobs(pool, NOOP);
  const lsn = await walPosition(pool);
  const since = await databaseNow(pool);
  await worker.start();
  // The mirror rows commit with the completions: the last completion is the last row's too.
  const rate = await drainRate(pool, NOOP, { since, before, jobs });
  const wal = (await walBytesSince(pool, lsn)) / jobs;
  await worker.stop(5000);
  return { rate, wal };
}

/** The same with a bare `boss.work` whose handler does nothing; pg-boss completes each batch at once. */
export async function bareRate(services, concurrency, jobs, { tracked = true } = {}) {
  await backlog(services, jobs, tracked);
  const { pool } = services;
  const boss = await startBoss({ databaseUrl: services.databaseUrl, log, role: 'worker', max: concurrency + 4 });
  const { n: before } = await completedJobs(pool, NOOP);
  const lsn = await walPosition(pool);
  const since = await databaseNow(pool);
  await boss.work(NOOP, { batchSize: concurrency, burstWhenBatchFull: true, includeMetadata: true, pollingIntervalSeconds: 1 }, async () => undefined);
  const rate = await drainRate(pool, NOOP, { since, before, jobs });
  const wal = (await walBytesSince(pool, lsn)) / jobs;
  await boss.stop({ graceful: true, timeout: 5000, close: true });
  return { rate, wal };
}

const goal = { ratio: ['>=', 0.8], text: '≥ 0.8×' };
const goal16 = { ratio: ['>=', 0.8], ours: ['>=', 5000], text: '≥ 0.8× and ≥ 5,000 jobs/s' };

export default {
  name: 'engine',
  rows: [
    { id: 'engine-vs-bare-4', name: 'pg-boss engine vs bare boss.work, batch/concurrency 4', unit: 'jobs/s', goal },
    { id: 'engine-vs-bare-16', name: 'pg-boss engine vs bare boss.work, batch/concurrency 16', unit: 'jobs/s', goal: goal16 },
    { id: 'tracking-off-vs-bare', name: 'after finalize --tracking off (no rows), pg-boss engine vs bare boss.work, concurrency 16', unit: 'jobs/s', goal: { ratio: ['>=', 0.9], text: '≥ 0.9×' } },
  ],
  params: { small: { jobs: 1000, warmupJobs: 300 }, full: { jobs: 10_000, warmupJobs: 2000 } },
  async once({ databases, params, run, warmup }) {
    const jobs = warmup ? params.warmupJobs : params.jobs;
    const results = {};
    // Each side drains in a fresh database of its own: in a shared one the side that went first
    // paid for the cold tables and the autovacuum after the backlog (measured: either side ran at
    // about half its rate when first), and with three runs ours went first twice.
    const sides = async (label, concurrency, options) => {
      const { ours, reference } = await sideBySide(
        run,
        () => withDatabase(databases, `engine_${label}_ours_${run}`, (services) => engineRate(services, concurrency, jobs, options)),
        () => withDatabase(databases, `engine_${label}_bare_${run}`, (services) => bareRate(services, concurrency, jobs, options)),
      );
      return { ours: ours.rate, reference: reference.rate, detail: { walBytesPerJob: { ours: ours.wal, reference: reference.wal } } };
    };
    for (const concurrency of [4, 16]) results[`engine-vs-bare-${concurrency}`] = await sides(String(concurrency), concurrency, {});
    results['tracking-off-vs-bare'] = await sides('untracked', 16, { tracked: false });
    return results;
  },
};

