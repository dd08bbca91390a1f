// Engine benchmarks, each side by side with its reference in the same run:
//   1. throughput on no-op jobs at concurrency 4: pg-boss worker vs the legacy runner
//   2. pickup latency (start − creation) below capacity: legacy runner vs pg-boss worker
//   3. RolloutManager.enqueue vs a raw boss.send; enqueueMany vs a raw boss.insert
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { LegacyRunner } from '../../dist/legacy/runner.js';
import { startBoss } from '../../dist/pgboss/boss.js';
import { BossWorker } from '../../dist/pgboss/worker.js';
import { changeFlag, FlagCache } from '../../dist/rollout/flags.js';
import { RolloutManager } from '../../dist/rollout/manager.js';
import { log, report, round, seconds, withDatabase, withServer } from './lib.mjs';

const TYPE = 'bench.noop';
const registryModule = fileURLToPath(new URL('./registry.mjs', import.meta.url));
const LEGACY_JOBS = Number(process.env.BENCH_LEGACY_JOBS ?? 200);
const PGBOSS_JOBS = Number(process.env.BENCH_PGBOSS_JOBS ?? 2000);
const ENQUEUE_JOBS = Number(process.env.BENCH_ENQUEUE_JOBS ?? 1000);
const BATCHES = Number(process.env.BENCH_BATCHES ?? 50);

async function manager({ pool, boss, registry, databaseUrl }, percent) {
  await changeFlag(pool, { jobType: '*', basisPoints: percent * 100 }, { actor: 'bench', action: 'flag.set' });
  const flags = new FlagCache({ pool, databaseUrl, log });
  return { rollout: new RolloutManager({ pool, boss, registry, flags, log }), flags };
}

async function waitFor(pool, sql, expected) {
  for (;;) {
    const { rows } = await pool.query(sql);
    if (Number(rows[0].n) >= expected) return;
    await sleep(20);
  }
}

/** Runs an engine while `load` enqueues; returns when `done` holds. */
async function withEngine(engine, services, run) {
  const { pool, databaseUrl, registry } = services;
  if (engine === 'legacy') {
    const controller = new AbortController();
    const runner = new LegacyRunner({ pool, databaseUrl, registry, log, concurrency: 4 });
    const running = runner.run(controller.signal);
    try {
      return await run();
    } finally {
      controller.abort();
      await running;
    }
  }
  const boss = await startBoss({ databaseUrl, log, role: 'worker', max: 8 });
  const worker = new BossWorker({ boss, pool, registry, log, concurrency: 4 });
  await worker.start();
  try {
    return await run();
  } finally {
    await worker.stop(5000);
  }
}

async function throughput(services, engine, jobs) {
  const { rollout, flags } = await manager(services, engine === 'legacy' ? 0 : 100);
  await rollout.enqueueMany(TYPE, Array.from({ length: jobs }, (_, n) => ({ payload: { n } })));
  await flags.close();
  return withEngine(engine, services, async () => {
    const start = performance.now();
    await waitFor(services.pool, `SELECT count(*) AS n FROM "Job" WHERE status = 'COMPLETED'`, jobs);
    return jobs / seconds(start);
  });
}

async function pickup(services, engine, jobs, perSecond) {
  const { rollout, flags } = await manager(services, engine === 'legacy' ? 0 : 100);
  const result = await withEngine(engine, services, async () => {
    for (let n = 0; n < jobs; n++) {
      await rollout.enqueue(TYPE, { n });
      await sleep(1000 / perSecond);
    }
    await waitFor(services.pool, `SELECT count(*) AS n FROM "Job" WHERE status = 'COMPLETED'`, jobs);
    const { rows } = await services.pool.query(
      `SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM "startedAt" - "createdAt") * 1000) AS p FROM "Job"`,
    );
    return { p50: rows[0].p[0], p95: rows[0].p[1] };
  });
  await flags.close();
  return result;
}

async function enqueueCost(services) {
  const { rollout, flags } = await manager(services, 100);
  const { boss } = services;
  let start = performance.now();
  for (let n = 0; n < ENQUEUE_JOBS; n++) await rollout.enqueue(TYPE, { n });
  const managed = (seconds(start) * 1000) / ENQUEUE_JOBS;
  start = performance.now();
  for (let n = 0; n < ENQUEUE_JOBS; n++) await boss.send(TYPE, { n });
  const raw = (seconds(start) * 1000) / ENQUEUE_JOBS;
  const batch = Array.from({ length: 1000 }, (_, n) => ({ payload: { n } }));
  start = performance.now();
  for (let b = 0; b < BATCHES; b++) await rollout.enqueueMany(TYPE, batch);
  const many = (BATCHES * 1000) / seconds(start);
  const rawBatch = batch.map(({ payload }) => ({ data: payload }));
  start = performance.now();
  for (let b = 0; b < BATCHES; b++) await boss.insert(TYPE, rawBatch);
  const inserts = (BATCHES * 1000) / seconds(start);
  await flags.close();
  return { managed, raw, many, inserts };
}

await withServer(async (adminUrl) => {
  const db = (name, run) => withDatabase(adminUrl, name, run, registryModule);
  const legacyRate = await db('bench_legacy_rate', (s) => throughput(s, 'legacy', LEGACY_JOBS));
  const bossRate = await db('bench_pgboss_rate', (s) => throughput(s, 'pgboss', PGBOSS_JOBS));
  const legacyPickup = await db('bench_legacy_pickup', (s) => pickup(s, 'legacy', 40, 2));
  const bossPickup = await db('bench_pgboss_pickup', (s) => pickup(s, 'pgboss', 100, 20));
  const cost = await db('bench_enqueue', (s) => enqueueCost(s));
  await report('engines.json', [
    { name: 'throughput, no-op jobs, concurrency 4', measured: `pg-boss ${round(bossRate)} jobs/s`, reference: `legacy ${round(legacyRate)} jobs/s`, ratio: round(bossRate / legacyRate) },
    { name: 'pickup latency p50 (legacy / pg-boss)', measured: `pg-boss ${round(bossPickup.p50)} ms`, reference: `legacy ${round(legacyPickup.p50)} ms`, ratio: round(legacyPickup.p50 / bossPickup.p50) },
    { name: 'pickup latency p95 (legacy / pg-boss)', measured: `pg-boss ${round(bossPickup.p95)} ms`, reference: `legacy ${round(legacyPickup.p95)} ms`, ratio: round(legacyPickup.p95 / bossPickup.p95) },
    { name: 'enqueue cost per job (RolloutManager / boss.send)', measured: `${round(cost.managed)} ms`, reference: `${round(cost.raw)} ms`, ratio: round(cost.managed / cost.raw) },
    { name: 'enqueueMany vs boss.insert, batches of 1000', measured: `${round(cost.many)} jobs/s`, reference: `${round(cost.inserts)} jobs/s`, ratio: round(cost.many / cost.inserts) },
  ]);
});
