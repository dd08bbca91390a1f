// Real jobs are not uniform: the legacy system runs LLM calls of seconds beside quick ones. The
// drain time of a backlog of jobs of mixed durations (from the first job's start to the last
// one's completion, on the database's clock), each engine in a fresh database of its own:
//   - interleaved: one job in ten of 3 s, the rest of 50 ms, concurrency 8;
//   - heavy-tailed: log-normal durations (median 100 ms, σ 1.5, the same draw every run);
//   - many slow jobs: 200 ms each at concurrency 200 in one worker process.
// Against the ideal (work ÷ slots, or the longest job if that is longer: nothing drains faster),
// the legacy runner (a child process per job) and bare pg-boss (`boss.work` with
// `localConcurrency` slots of one job each, bursting through the backlog).
import { setTimeout as sleep } from 'node:timers/promises';
import { startBoss } from '../../../dist/pgboss/boss.js';
import { BossWorker } from '../../../dist/pgboss/worker.js';
import { log, produce, sideBySide, startWorkerProcess, until, withDatabase } from '../lib.mjs';
import { withEngine } from './pickup.mjs';

const SLEEP = 'bench.sleep';

/** One in ten long, interleaved. */
const interleaved = (jobs, longMs, shortMs) => Array.from({ length: jobs }, (_, n) => (n % 10 === 0 ? longMs : shortMs));

/** Log-normal durations from a fixed seed, so every run and every engine drains the same jobs. */
function heavyTailed(jobs, medianMs) {
  let seed = 0x2545f491;
  const uniform = () => {
    seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
    return (seed + 0.5) / 2 ** 32;
  };
  return Array.from({ length: jobs }, () => {
    const normal = Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
    return Math.max(1, Math.round(medianMs * Math.exp(1.5 * normal)));
  });
}

const ideal = (durations, slots) => Math.max(durations.reduce((sum, ms) => sum + ms, 0) / slots, Math.max(...durations)) / 1000;

const SPAN_JOBS = `SELECT count(*) AS n, EXTRACT(EPOCH FROM max(completed_on) - min(started_on))::float8 AS seconds FROM pgboss.job WHERE name = $1 AND state = 'completed'`;
const SPAN_ROWS = `SELECT count(*) AS n, EXTRACT(EPOCH FROM max("completedAt") - min("startedAt"))::float8 AS seconds FROM "Job" WHERE type = $1 AND status = 'COMPLETED'`;

/** Waits for the backlog to drain; its drain time in seconds. */
async function drained(pool, jobs, rows = false) {
  const sql = rows ? SPAN_ROWS : SPAN_JOBS;
  await until(pool, sql, jobs, { everyMs: 100, values: [SLEEP] });
  const { rows: found } = await pool.query(sql, [SLEEP]);
  return found[0].seconds;
}

/** cutover's engine in this process: drain time. */
async function engineSpan(services, durations, concurrency) {
  await produce(services, { type: SLEEP, count: durations.length, payload: (n) => ({ ms: durations[n] }) });
  const boss = await startBoss({ databaseUrl: services.databaseUrl, log, role: 'worker' });
  const worker = new BossWorker({ boss, pool: services.pool, registry: services.registry, log, concurrency, types: [SLEEP] });
  await worker.start();
  try {
    return await drained(services.pool, durations.length);
  } finally {
    await worker.stop(5000);
  }
}

/** Bare pg-boss at its best on a backlog: a slot per job (localConcurrency), bursting while jobs are ready. */
async function bareSpan(services, durations, concurrency) {
  await produce(services, { type: SLEEP, count: durations.length, payload: (n) => ({ ms: durations[n] }) });
  const boss = await startBoss({ databaseUrl: services.databaseUrl, log, role: 'worker' });
  await boss.work(
    SLEEP,
    { batchSize: 1, localConcurrency: concurrency, burstWhenReadyExceeds: 1, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 0.5 },
    async ([job]) => sleep(job.data.ms),
  );
  try {
    return await drained(services.pool, durations.length);
  } finally {
    await boss.stop({ graceful: true, timeout: 5000, close: true });
  }
}

async function legacySpan(services, durations, concurrency) {
  await produce(services, { type: SLEEP, count: durations.length, percent: 0, payload: (n) => ({ ms: durations[n] }) });
  return withEngine('LEGACY', services, concurrency, () => drained(services.pool, durations.length, true));
}

/** The engine as operators run it, a worker process of its own: drain time. */
async function processSpan(services, durations, concurrency) {
  await produce(services, { type: SLEEP, count: durations.length, payload: (n) => ({ ms: durations[n] }) });
  const worker = await startWorkerProcess({ engine: 'pgboss', databaseUrl: services.databaseUrl, concurrency, types: [SLEEP] });
  try {
    return await drained(services.pool, durations.length);
  } finally {
    await worker.stop();
  }
}

/** Each side in a database of its own: a side never drains the other's jobs. */
const side = (databases, label, measure) => () => withDatabase(databases, label, measure);

const notSlower = { ratio: ['<=', 1], text: '≤ 1×' };
const nearIdeal = { ratio: ['<=', 1.2], text: '≤ 1.2×' };

export default {
  name: 'mixed',
  rows: [
    { id: 'mixed-vs-ideal', name: 'mixed durations (1 in 10 long), drain time, pg-boss engine vs the ideal (work ÷ 8 slots)', unit: 's', goal: nearIdeal },
    { id: 'mixed-vs-bare', name: 'mixed durations (1 in 10 long), drain time, pg-boss engine vs bare boss.work, localConcurrency 8', unit: 's', goal: notSlower },
    { id: 'mixed-vs-legacy', name: 'mixed durations (1 in 10 long), drain time, pg-boss engine vs legacy runner, concurrency 8', unit: 's', goal: notSlower },
    { id: 'heavy-tail-vs-ideal', name: 'heavy-tailed durations, drain time, pg-boss engine vs the ideal (8 slots)', unit: 's', goal: nearIdeal },
    { id: 'heavy-tail-vs-bare', name: 'heavy-tailed durations, drain time, pg-boss engine vs bare boss.work, localConcurrency 8', unit: 's', goal: notSlower },
    { id: 'many-slow-vs-ideal', name: 'many slow jobs (200 ms) at concurrency 200 in one worker process, drain time vs the ideal', unit: 's', goal: nearIdeal },
  ],
  params: {
    small: { jobs: 30, longMs: 600, shortMs: 20, heavyJobs: 30, heavyMedianMs: 20, slowJobs: 400 },
    full: { jobs: 240, longMs: 3000, shortMs: 50, heavyJobs: 240, heavyMedianMs: 100, slowJobs: 2000 },
  },
  async once({ databases, params, run, warmup }) {
    const share = (count) => (warmup ? Math.max(10, Math.ceil(count / 4)) : count);
    const concurrency = 8;
    const mixed = interleaved(share(params.jobs), params.longMs, params.shortMs);
    const heavy = heavyTailed(share(params.heavyJobs), params.heavyMedianMs);
    const slow = Array.from({ length: share(params.slowJobs) }, () => 200);

    const { ours: engine, reference: [bare, legacy] } = await sideBySide(
      run,
      side(databases, `mixed_engine_${run}`, (services) => engineSpan(services, mixed, concurrency)),
      async () => [
        await side(databases, `mixed_bare_${run}`, (services) => bareSpan(services, mixed, concurrency))(),
        await side(databases, `mixed_legacy_${run}`, (services) => legacySpan(services, mixed, concurrency))(),
      ],
    );
    const { ours: heavyEngine, reference: heavyBare } = await sideBySide(
      run,
      side(databases, `heavy_engine_${run}`, (services) => engineSpan(services, heavy, concurrency)),
      side(databases, `heavy_bare_${run}`, (services) => bareSpan(services, heavy, concurrency)),
    );
    const slowEngine = await side(databases, `slow_engine_${run}`, (services) => processSpan(services, slow, 200))();
    return {
      'mixed-vs-ideal': { ours: engine, reference: ideal(mixed, concurrency) },
      'mixed-vs-bare': { ours: engine, reference: bare },
      'mixed-vs-legacy': { ours: engine, reference: legacy },
      'heavy-tail-vs-ideal': { ours: heavyEngine, reference: ideal(heavy, concurrency) },
      'heavy-tail-vs-bare': { ours: heavyEngine, reference: heavyBare },
      'many-slow-vs-ideal': { ours: slowEngine, reference: ideal(slow, 200) },
    };
  },
};
