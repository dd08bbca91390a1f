// The cost of process isolation on pg-boss: the same no-op job, run by the
// same BossWorker, in process and with `isolation: 'process'` (a child per job through the
// legacy runner's executor). Measured side by side in one database:
//   - a job process on its own, sequentially: spawn, load the registry, run, exit (ms per job);
//   - drains of a backlog at concurrency 4 (jobs/s), for both, alternated over `rounds` rounds
//     (medians), so a machine whose load changes meanwhile skews both alike; and the peak
//     resident memory of each job process (sampled from /proc while the isolated drains run).
// `node scripts/isolation-cost.mjs [--jobs N] [--rounds R] [--json]` after `npx tsc -p tsconfig.build.json`;
// BENCH_DATABASE_URL to use a running server, else an embedded one. `isolationCost(services)` is
// the row a bench suite can call.
import { readdir, readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { executeInChild } from '../dist/isolation/executor.js';
import { startBoss } from '../dist/pgboss/boss.js';
import { BossWorker } from '../dist/pgboss/worker.js';
import { completedJobs, Databases, databaseNow, drainRate, log, median, produce, withDatabase, withServer } from './bench/lib.mjs';

/** A team-shaped registry with the two no-op types: `iso.noop` (isolated) and `iso.noop-inprocess`. */
export const ISOLATION_REGISTRY = fileURLToPath(new URL('../test/fixtures/isolation-registry.mjs', import.meta.url));
const ISOLATED = 'iso.noop';
const IN_PROCESS = 'iso.noop-inprocess';

/** Milliseconds per job process run one after another: the floor of what isolation adds per job. */
async function childLatency(services, runs) {
  const times = [];
  for (let run = 0; run < runs; run += 1) {
    const start = performance.now();
    const outcome = await executeInChild(
      { jobId: crypto.randomUUID(), type: ISOLATED, payload: {}, attempt: 1, engine: 'PGBOSS', registryModule: ISOLATION_REGISTRY },
      { timeoutMs: 30_000, databaseUrl: services.databaseUrl },
    );
    if (!outcome.ok) throw new Error(`job process failed: ${outcome.failure.message}\n${outcome.logs}`);
    times.push(performance.now() - start);
  }
  return median(times);
}

/**
 * Peak RSS (VmHWM, bytes) of each job process of ours alive now, by pid: this process's direct
 * children (from /proc/<pid>/task/<tid>/children, so the sampling itself stays cheap) that run the
 * isolation child entry. Linux only; elsewhere nothing is sampled.
 */
async function sampleJobProcesses(peaks) {
  const tasks = await readdir(`/proc/${process.pid}/task`).catch(() => []);
  const children = (await Promise.all(tasks.map((task) => readFile(`/proc/${process.pid}/task/${task}/children`, 'utf8').catch(() => '')))).join(' ').split(/\s+/).filter(Boolean);
  await Promise.all(
    children.map(async (pid) => {
      const [cmdline, status] = await Promise.all([readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => ''), readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')]);
      if (!cmdline.includes('isolation/child.js')) return;
      const peak = Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0) * 1024;
      peaks.set(pid, Math.max(peaks.get(pid) ?? 0, peak));
    }),
  );
}

/** Drains `jobs` jobs of `type` with a BossWorker at `concurrency`: jobs/s, and the job processes' peak RSS. */
async function drain(services, type, { jobs, concurrency }) {
  await produce(services, { type, count: jobs, payload: () => ({}) });
  const { pool } = services;
  const boss = await startBoss({ databaseUrl: services.databaseUrl, log, role: 'worker', max: concurrency + 4 });
  const worker = new BossWorker({ boss, pool, registry: services.registry, log, concurrency, types: [type] });
  const { n: before } = await completedJobs(pool, type, true);
  const since = await databaseNow(pool);
  const peaks = new Map();
  // Only where there are job processes to see, and never two samples at once.
  let sampling = false;
  const sampler = setInterval(() => {
    if (type !== ISOLATED || sampling) return;
    sampling = true;
    void sampleJobProcesses(peaks).finally(() => (sampling = false));
  }, 50);
  await worker.start();
  try {
    const rate = await drainRate(pool, type, { since, before, jobs, rows: true });
    const sampled = [...peaks.values()].filter((bytes) => bytes > 0);
    return { rate, jobProcesses: sampled.length, jobProcessRssMiB: sampled.length ? median(sampled) / 1024 / 1024 : null };
  } finally {
    clearInterval(sampler);
    await worker.stop(5000);
  }
}

/**
 * One measurement in a database of `services` (lib.mjs openDatabase with registryModule
 * ISOLATION_REGISTRY): per-job latency of a bare job process, and both drains.
 */
export async function isolationCost(services, { jobs = 100, concurrency = 4, childRuns = 20, rounds = 3 } = {}) {
  await childLatency(services, 3); // warms the compile cache, as a running worker has
  const childMs = await childLatency(services, childRuns);
  const inProcess = [];
  const isolated = [];
  for (let round = 0; round < rounds; round += 1) {
    // In process needs more jobs for a drain long enough to time.
    inProcess.push(await drain(services, IN_PROCESS, { jobs: jobs * 10, concurrency }));
    isolated.push(await drain(services, ISOLATED, { jobs, concurrency }));
  }
  const inProcessRate = median(inProcess.map((drained) => drained.rate));
  const isolatedRate = median(isolated.map((drained) => drained.rate));
  const rss = isolated.map((drained) => drained.jobProcessRssMiB).filter((value) => value !== null);
  return {
    /** Wall time of one job process, spawn to exit, run one after another. */
    childProcessMsPerJob: childMs,
    /** Median peak RSS of the job processes seen during the isolated drains. */
    jobProcessRssMiB: rss.length ? median(rss) : null,
    inProcess: { jobsPerSecond: inProcessRate, msPerJob: 1000 / inProcessRate, rounds: inProcess.map((drained) => drained.rate) },
    isolated: { jobsPerSecond: isolatedRate, msPerJob: 1000 / isolatedRate, rounds: isolated.map((drained) => drained.rate) },
    /** Throughput at `concurrency`: how many times fewer jobs per second isolation runs. */
    slowdown: inProcessRate / isolatedRate,
    concurrency,
  };
}

async function main() {
  const { values } = parseArgs({ options: { jobs: { type: 'string', default: '100' }, rounds: { type: 'string', default: '3' }, json: { type: 'boolean', default: false } } });
  const jobs = Number(values.jobs);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(jobs) || jobs < 1 || !Number.isInteger(rounds) || rounds < 1) throw new Error(`--jobs and --rounds must be positive integers, got ${values.jobs} and ${values.rounds}`);
  const result = await withServer(async (adminUrl) => {
    const databases = new Databases(adminUrl);
    try {
      return await withDatabase(databases, 'isolation_cost', (services) => isolationCost(services, { jobs, rounds }), { registryModule: ISOLATION_REGISTRY });
    } finally {
      await databases.close();
    }
  });
  if (values.json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return;
  }
  const f = (n, digits = 1) => n.toFixed(digits);
  process.stdout.write(
    [
      `process isolation on pg-boss, no-op jobs (drains ${result.concurrency} at a time, medians of ${result.isolated.rounds.length} alternated rounds)`,
      `  a job process alone (spawn, load registry, run, exit): ${f(result.childProcessMsPerJob)} ms per job, ${result.jobProcessRssMiB === null ? '?' : f(result.jobProcessRssMiB, 0)} MiB peak RSS`,
      `  in process: ${f(result.inProcess.jobsPerSecond, 0)} jobs/s (${f(result.inProcess.msPerJob, 2)} ms/job)`,
      `  isolated:   ${f(result.isolated.jobsPerSecond, 1)} jobs/s (${f(result.isolated.msPerJob, 1)} ms/job)`,
      `  isolation runs ${f(result.slowdown)}× fewer jobs per second`,
      '',
    ].join('\n'),
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main();
