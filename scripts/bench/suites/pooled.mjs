// Behind a transaction pooler, side by side with the same work direct, on the same database in
// the same run: RolloutManager.enqueue (one job at a time), enqueueMany (batches of 1,000) and
// the pg-boss engine (concurrency 16) through a real PgBouncer in `pool_mode = transaction`
// (scripts/pgbouncer.ts, as the chaos run starts it) with no DIRECT_URL, against the same
// direct. "ours" is through PgBouncer, "reference" direct: the ratio is what the pooler costs.
// Every job routed to pg-boss at 100 %; a run that sent any to legacy as a fallback fails.
// Without PgBouncer installed the suite says so in one line and measures nothing.
import { existsSync } from 'node:fs';
import { createPool } from '../../../dist/db/pool.js';
import { startBoss } from '../../../dist/pgboss/boss.js';
import { BossWorker } from '../../../dist/pgboss/worker.js';
import { startPgBouncer } from '../../pgbouncer.ts';
import { completedJobs, databaseNow, drainRate, log, NOOP, produce, rolloutManager, seconds, sideBySide, withDatabase } from '../lib.mjs';

const available = existsSync('/usr/sbin/pgbouncer') || existsSync('/usr/bin/pgbouncer');
const CONCURRENCY = 16;

// A pooler adds a hop per statement and hands each transaction a server connection: it may cost
// something, never a collapse (prepared statements turned off, polling instead of LISTEN).
const ROWS = [
  { id: 'pooled-enqueue', name: 'RolloutManager.enqueue through PgBouncer vs direct (time per job)', unit: 'ms', goal: { ratio: ['<=', 1.5], text: '≤ 1.5×' } },
  { id: 'pooled-enqueue-many', name: 'enqueueMany through PgBouncer vs direct, batches of 1000', unit: 'jobs/s', goal: { ratio: ['>=', 0.7], text: '≥ 0.7×' } },
  { id: 'pooled-engine-16', name: 'pg-boss engine through PgBouncer vs direct, concurrency 16', unit: 'jobs/s', goal: { ratio: ['>=', 0.7], text: '≥ 0.7×' } },
];

/**
 * A producer's and a worker's connections to one database on `url`, as cutover opens them:
 * its pool, a pg-boss client, the RolloutManager. Behind the pooler there is no LISTEN (the
 * flag cache re-reads on its TTL; a worker polls).
 */
async function sideOn(services, url, pooled) {
  const pool = createPool(url, { max: 6 });
  const boss = await startBoss({ databaseUrl: url, log, max: 6 });
  const { manager, flags } = await rolloutManager({ ...services, pool, boss }, 100);
  return {
    url,
    pooled,
    pool,
    manager,
    async close() {
      await flags.close();
      await boss.stop({ graceful: false, close: true });
      await pool.end();
    },
  };
}

/** Drains `jobs` no-op jobs (written direct, unmeasured) with cutover's engine on the side's URL; jobs/s. */
async function engineRate(services, side, jobs) {
  await produce(services, { count: jobs });
  const boss = await startBoss({ databaseUrl: side.url, log, role: 'worker', max: CONCURRENCY + 4, listen: !side.pooled });
  const worker = new BossWorker({ boss, pool: side.pool, registry: services.registry, log, concurrency: CONCURRENCY });
  const { n: before } = await completedJobs(services.pool, NOOP);
  const since = await databaseNow(services.pool);
  await worker.start();
  try {
    return await drainRate(services.pool, NOOP, { since, before, jobs });
  } finally {
    await worker.stop(5000);
  }
}

export default {
  name: 'pooled',
  rows: available ? ROWS : [],
  params: { small: { jobs: 200, batches: 3, engineJobs: 1000, warmupJobs: 300 }, full: { jobs: 2000, batches: 30, engineJobs: 10_000, warmupJobs: 2000 } },
  async setup({ databases }) {
    if (!available) {
      process.stderr.write('bench pooled: skipped, PgBouncer is not installed (apt-get install pgbouncer)\n');
      return undefined;
    }
    // 20 server connections: PgBouncer's default pool size, more than the 16 the engine fetches with.
    return { bouncer: await startPgBouncer({ serverUrl: databases.adminUrl, poolSize: 20 }) };
  },
  async teardown(state) {
    await state?.bouncer.stop();
  },
  async once({ databases, params, run, warmup, state }) {
    if (!state) return {};
    const bothSides = async (label, measure) =>
      withDatabase(databases, `pooled_${label}_${run}`, async (services) => {
        const pooled = await sideOn(services, state.bouncer.urlFor(services.databaseUrl), true);
        const direct = await sideOn(services, services.databaseUrl, false);
        try {
          return await measure(services, pooled, direct);
        } finally {
          await pooled.close();
          await direct.close();
        }
      });
    const enqueue = await bothSides('enqueue', async (services, pooled, direct) => {
      let n = 0;
      const single = await sideBySide(
        run,
        ...[pooled, direct].map((side) => async () => {
          const start = performance.now();
          for (let i = 0; i < params.jobs; i++) await side.manager.enqueue(NOOP, { n: n++ });
          return (seconds(start) * 1000) / params.jobs;
        }),
      );
      const many = await sideBySide(
        run,
        ...[pooled, direct].map((side) => async () => {
          const batches = Array.from({ length: params.batches }, () => Array.from({ length: 1000 }, () => ({ payload: { n: n++ } })));
          const start = performance.now();
          for (const items of batches) await side.manager.enqueueMany(NOOP, items);
          return (params.batches * 1000) / seconds(start);
        }),
      );
      // What a pooler must not cause: a job sent to legacy because our own statement failed.
      const { rows } = await services.pool.query(`SELECT count(*)::int AS n FROM "Job" WHERE engine = 'LEGACY'`);
      if (rows[0].n) throw new Error(`bench pooled: ${rows[0].n} jobs went to legacy at 100 % (fallbacks)`);
      return { 'pooled-enqueue': single, 'pooled-enqueue-many': many };
    });
    const jobs = warmup ? params.warmupJobs : params.engineJobs;
    const engine = await bothSides('engine', (services, pooled, direct) =>
      sideBySide(
        run,
        () => engineRate(services, pooled, jobs),
        () => engineRate(services, direct, jobs),
      ),
    );
    return { ...enqueue, 'pooled-engine-16': engine };
  },
};
