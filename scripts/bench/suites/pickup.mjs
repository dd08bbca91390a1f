// Pickup latency (a job's start minus its creation, both on the database's clock) below
// capacity: the legacy runner (polls every second, a child per job) vs the pg-boss engine
// (LISTEN/NOTIFY), each at concurrency 4, on jobs arriving at random (Poisson) times.
import { setTimeout as sleep } from 'node:timers/promises';
import { LegacyRunner } from '../../../dist/legacy/runner.js';
import { startBoss } from '../../../dist/pgboss/boss.js';
import { BossWorker } from '../../../dist/pgboss/worker.js';
import { log, NOOP, rolloutManager, sideBySide, until, withDatabase } from '../lib.mjs';

/** Runs `engine` while `run` goes on. */
export async function withEngine(engine, services, concurrency, run) {
  const { pool, databaseUrl, registry } = services;
  if (engine === 'LEGACY') {
    const controller = new AbortController();
    const runner = new LegacyRunner({ pool, databaseUrl, registry, log, concurrency });
    const running = runner.run(controller.signal);
    try {
      return await run();
    } finally {
      controller.abort();
      await running;
    }
  }
  const boss = await startBoss({ databaseUrl, log, role: 'worker', max: concurrency + 4 });
  const worker = new BossWorker({ boss, pool, registry, log, concurrency });
  await worker.start();
  try {
    return await run();
  } finally {
    await worker.stop(5000);
  }
}

async function pickup(services, engine, { jobs, perSecond }) {
  const { manager, flags } = await rolloutManager(services, engine === 'LEGACY' ? 0 : 100);
  const { pool } = services;
  try {
    return await withEngine(engine, services, 4, async () => {
      const ids = [];
      for (let n = 0; n < jobs; n++) {
        ids.push((await manager.enqueue(NOOP, { n })).id);
        await sleep((-Math.log(1 - Math.random()) * 1000) / perSecond);
      }
      await until(pool, `SELECT count(*) AS n FROM "Job" WHERE id = ANY($1::uuid[]) AND status = 'COMPLETED'`, jobs, { everyMs: 50, values: [ids] });
      const { rows } = await pool.query(
        `SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM "startedAt" - "createdAt") * 1000) AS p
           FROM "Job" WHERE id = ANY($1::uuid[])`,
        [ids],
      );
      return { p50: rows[0].p[0], p95: rows[0].p[1] };
    });
  } finally {
    await flags.close();
  }
}

const goal = { ratio: ['<=', 0.1], text: '≤ 0.1×' };

export default {
  name: 'pickup',
  rows: [
    { id: 'pickup-p50', name: 'pickup latency p50, pg-boss engine vs legacy runner', unit: 'ms', goal },
    { id: 'pickup-p95', name: 'pickup latency p95, pg-boss engine vs legacy runner', unit: 'ms', goal },
  ],
  params: {
    small: { legacy: { jobs: 12, perSecond: 4 }, pgboss: { jobs: 30, perSecond: 20 } },
    full: { legacy: { jobs: 40, perSecond: 2 }, pgboss: { jobs: 200, perSecond: 20 } },
  },
  async once({ databases, params, run, warmup }) {
    const size = (side) => (warmup ? { ...side, jobs: Math.ceil(side.jobs / 4) } : side);
    return withDatabase(databases, `pickup_${run}`, async (services) => {
      const { ours, reference } = await sideBySide(
        run,
        () => pickup(services, 'PGBOSS', size(params.pgboss)),
        () => pickup(services, 'LEGACY', size(params.legacy)),
      );
      return {
        'pickup-p50': { ours: ours.p50, reference: reference.p50 },
        'pickup-p95': { ours: ours.p95, reference: reference.p95 },
      };
    });
  },
};
