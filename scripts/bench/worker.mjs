// The pg-boss engine against bare pg-boss, side by side in one run, on the same no-op jobs:
// cutover's BossWorker (mirror rows committed with each state change) vs a plain `boss.work`
// with the same batch size and burst, at concurrency 4 and 16. Median of 3 runs each, after
// a warm-up; each run on a fresh database.
import { BossWorker } from '../../dist/pgboss/worker.js';
import { startBoss } from '../../dist/pgboss/boss.js';
import { changeFlag, FlagCache } from '../../dist/rollout/flags.js';
import { RolloutManager } from '../../dist/rollout/manager.js';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { log, report, round, seconds, withDatabase, withServer } from './lib.mjs';

const TYPE = 'bench.noop';
const registryModule = fileURLToPath(new URL('./registry.mjs', import.meta.url));
const JOBS = Number(process.env.BENCH_WORKER_JOBS ?? 4000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

async function until(pool, sql, expected) {
  for (;;) {
    const { rows } = await pool.query(sql);
    if (Number(rows[0].n) >= expected) return;
    await sleep(10);
  }
}

/** Jobs with their tracking rows, as producers would have written them. */
async function produce({ pool, boss, registry, databaseUrl }) {
  await changeFlag(pool, { jobType: '*', basisPoints: 10_000 }, { actor: 'bench', action: 'flag.set' });
  const flags = new FlagCache({ pool, databaseUrl, log });
  const manager = new RolloutManager({ pool, boss, registry, flags, log });
  for (let n = 0; n < JOBS; n += 1000) await manager.enqueueMany(TYPE, Array.from({ length: Math.min(1000, JOBS - n) }, (_, i) => ({ payload: { n: n + i } })));
  await flags.close();
}

async function engine(services, concurrency) {
  await produce(services);
  const boss = await startBoss({ databaseUrl: services.databaseUrl, log, role: 'worker', max: concurrency + 4 });
  const worker = new BossWorker({ boss, pool: services.pool, registry: services.registry, log, concurrency });
  const start = performance.now();
  await worker.start();
  await until(services.pool, `SELECT count(*) AS n FROM "Job" WHERE status = 'COMPLETED'`, JOBS);
  const rate = JOBS / seconds(start);
  await worker.stop(5000);
  return rate;
}

async function bare(services, concurrency) {
  await produce(services);
  const boss = await startBoss({ databaseUrl: services.databaseUrl, log, role: 'worker', max: concurrency + 4 });
  const start = performance.now();
  await boss.work(TYPE, { batchSize: concurrency, burstWhenBatchFull: true, includeMetadata: true, pollingIntervalSeconds: 1 }, async () => undefined);
  await until(services.pool, `SELECT count(*) AS n FROM pgboss.job WHERE name = '${TYPE}' AND state = 'completed'`, JOBS);
  const rate = JOBS / seconds(start);
  await boss.stop({ graceful: true, timeout: 5000, close: true });
  return rate;
}

await withServer(async (adminUrl) => {
  const db = (name, run) => withDatabase(adminUrl, name, run, registryModule);
  await db('bench_worker_warmup', (s) => engine(s, 4));
  const rows = [];
  for (const concurrency of [4, 16]) {
    const ours = [];
    const reference = [];
    for (let run = 0; run < RUNS; run++) {
      ours.push(await db(`bench_worker_engine_${concurrency}_${run}`, (s) => engine(s, concurrency)));
      reference.push(await db(`bench_worker_bare_${concurrency}_${run}`, (s) => bare(s, concurrency)));
    }
    const [m, r] = [median(ours), median(reference)];
    rows.push({ name: `pg-boss engine vs bare boss.work, batch/concurrency ${concurrency}`, measured: `${round(m)} jobs/s`, reference: `${round(r)} jobs/s`, ratio: round(m / r) });
  }
  await report('worker.json', rows);
});
