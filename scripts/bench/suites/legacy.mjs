// Throughput on no-op jobs at concurrency 4, side by side in one database: the pg-boss engine
// vs the legacy runner (claim a row, spawn a child per job). A backlog for each, drained.
import { completedJobs, databaseNow, drainRate, NOOP, produce, sideBySide, withDatabase } from '../lib.mjs';
import { engineRate } from './engine.mjs';
import { withEngine } from './pickup.mjs';

async function legacyRate(services, jobs) {
  await produce(services, { count: jobs, percent: 0 });
  const { pool } = services;
  const { n: before } = await completedJobs(pool, NOOP, true);
  const since = await databaseNow(pool);
  return withEngine('LEGACY', services, 4, () => drainRate(pool, NOOP, { since, before, jobs, rows: true }));
}

export default {
  name: 'legacy',
  rows: [{ id: 'engine-vs-legacy', name: 'pg-boss engine vs legacy runner, no-op jobs, concurrency 4', unit: 'jobs/s', goal: { ratio: ['>=', 10], text: '≥ 10×' } }],
  params: { small: { legacy: 40, pgboss: 500 }, full: { legacy: 200, pgboss: 4000 } },
  async once({ databases, params, run, warmup }) {
    const scale = warmup ? 0.25 : 1;
    return withDatabase(databases, `legacy_${run}`, async (services) => {
      const { ours, reference } = await sideBySide(
        run,
        async () => (await engineRate(services, 4, Math.ceil(params.pgboss * scale))).rate,
        () => legacyRate(services, Math.ceil(params.legacy * scale)),
      );
      return { 'engine-vs-legacy': { ours, reference } };
    });
  },
};
