#!/usr/bin/env node
// What one dashboard refresh and one /metrics scrape cost on a big legacy table:
// `node scripts/dashboard-cost.mjs [--rows 1000000] [--runs 5]` after `npm run build`.
// Seeds a week of jobs (half on pg-boss, with their pg-boss rows and dead letters), a plan on
// an analysis step, then times each read several times and prints the medians. Uses
// BENCH_DATABASE_URL's server if set, else an embedded Postgres in a temp dir.
import { parseArgs } from 'node:util';
import { Databases, withServer } from './bench/lib.mjs';
import { createPool } from '../dist/db/pool.js';
import { loadRegistry } from '../dist/jobs/registry.js';
import { createLogger } from '../dist/support/log.js';
import { readMetrics } from '../dist/observe/metrics.js';
import { getStatus } from '../dist/observe/status.js';
import { startBoss } from '../dist/pgboss/boss.js';
import { ensureQueues } from '../dist/pgboss/queues.js';
import { planSchema } from '../dist/plans/plan.js';
import { startPlan } from '../dist/plans/plan-runner.js';
import { startDashboard } from '../dist/dashboard/server.js';
import { Snapshots } from '../dist/dashboard/snapshot.js';
import { GENERIC_TABLE } from '../dist/table/table.js';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '1000000' }, runs: { type: 'string', default: '5' } } });
const ROWS = Number(values.rows);
const RUNS = Number(values.runs);
const log = createLogger({ level: 'warn', name: 'dashboard-cost' });

const median = (list) => {
  const sorted = [...list].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

/** Median milliseconds of `run` over RUNS runs, after one run to warm the cache. */
async function time(run) {
  await run();
  const spent = [];
  for (let i = 0; i < RUNS; i += 1) {
    const started = performance.now();
    await run();
    spent.push(performance.now() - started);
  }
  return Math.round(median(spent) * 10) / 10;
}

/**
 * A week of jobs, oldest first: 80 % evaluation.process, 10 % each of the others; even rows on
 * pg-boss; 3 % failed; the newest two minutes still waiting or running. pg-boss holds a job per
 * pg-boss row (it keeps finished jobs for a week by default) and a dead letter per failure.
 */
async function seed(client, rows) {
  await client.query(
    `INSERT INTO "Job" (id, type, payload, status, priority, attempts, "maxAttempts", "createdAt", "updatedAt", "startedAt", "completedAt", engine, "pgbossJobId", "routeReason", bucket)
     SELECT id, type, payload,
            (CASE WHEN age < 60 THEN 'PENDING' WHEN age < 120 THEN 'RUNNING' WHEN r < 0.03 THEN 'FAILED' ELSE 'COMPLETED' END)::"JobStatus",
            0, 1, 1,
            now() AT TIME ZONE 'UTC' - make_interval(secs => age),
            now() AT TIME ZONE 'UTC' - make_interval(secs => age) + interval '2 seconds',
            CASE WHEN age >= 60 THEN now() AT TIME ZONE 'UTC' - make_interval(secs => age) + make_interval(secs => 0.2 + r * 2) END,
            CASE WHEN age >= 120 THEN now() AT TIME ZONE 'UTC' - make_interval(secs => age) + make_interval(secs => 0.5 + r * 10 + CASE WHEN engine = 'LEGACY' THEN 1 ELSE 0 END) END,
            engine::"JobEngine", CASE WHEN engine = 'PGBOSS' THEN id END,
            CASE WHEN i % 1000 = 0 THEN 'handedback' WHEN i % 997 = 0 THEN 'fallback' ELSE 'bucket' END, i % 10000
       FROM (SELECT i, gen_random_uuid() AS id, random() AS r, ((i::float8 / $1) * 7 * 86400) AS age,
                    CASE WHEN i % 10 = 0 THEN 'import.article' WHEN i % 10 = 1 THEN 'notification.send' ELSE 'evaluation.process' END AS type,
                    jsonb_build_object('documentId', 'doc-' || i, 'agentId', 'agent-' || (i % 7)) AS payload,
                    CASE WHEN i % 2 = 0 THEN 'PGBOSS' ELSE 'LEGACY' END AS engine
               FROM generate_series(1, $1) AS i) s`,
    [rows],
  );
  await client.query(
    `INSERT INTO pgboss.job (id, name, data, state, created_on, started_on, completed_on)
     SELECT "pgbossJobId", type, '{}'::jsonb,
            (CASE status WHEN 'PENDING' THEN 'created' WHEN 'RUNNING' THEN 'active' WHEN 'FAILED' THEN 'failed' ELSE 'completed' END)::pgboss.job_state,
            "createdAt" AT TIME ZONE 'UTC', "startedAt" AT TIME ZONE 'UTC', "completedAt" AT TIME ZONE 'UTC'
       FROM "Job" WHERE engine = 'PGBOSS'`,
  );
  await client.query(`INSERT INTO pgboss.job (name, data, state) SELECT type || '.dlq', '{}'::jsonb, 'created' FROM "Job" WHERE engine = 'PGBOSS' AND status = 'FAILED'`);
  await client.query(`VACUUM ANALYZE "Job"`);
  await client.query(`VACUUM ANALYZE pgboss.job_common`);
}

await withServer(async (adminUrl) => {
  // Migrated, with pg-boss's schema, like every benchmark database.
  const databases = new Databases(adminUrl);
  const scratch = await databases.create('dashboard_cost');
  const databaseUrl = scratch.url;
  const pool = createPool(databaseUrl, { max: 8, applicationName: 'cutover-dashboard-cost' });
  try {
    const registry = await loadRegistry();
    const boss = await startBoss({ databaseUrl, log, max: 2 });
    await ensureQueues(boss, registry, log);
    await boss.stop({ graceful: false, close: true });
    const seeding = performance.now();
    const client = await pool.connect();
    try {
      await seed(client, ROWS);
    } finally {
      client.release();
    }
    process.stderr.write(`seeded ${ROWS.toLocaleString('en')} rows in ${Math.round((performance.now() - seeding) / 1000)} s\n`);
    const plan = planSchema.parse({ name: 'cost', jobType: 'evaluation.process', steps: [{ analysis: { gates: { minSamples: 30 }, interval: 60 } }, { setWeight: 100 }] });
    await startPlan({ pool, databaseUrl, registry, log, actor: 'bench' }, plan);

    const types = registry.names();
    const source = { pool, databaseUrl, registry, table: GENERIC_TABLE, log, env: {} };
    // No snapshot cache: every request reads the database, as the first page or scrape of an interval does.
    const uncached = new Snapshots(source, 0);
    const server = await startDashboard({ host: '127.0.0.1', port: 0, snapshots: uncached, actions: { ...source, boss: async () => { throw new Error('no writes here'); }, settleMs: 0 }, token: null, refreshSeconds: 5, pgbossDashboardUrl: null });
    const gatesEachTime = new Snapshots({ ...source, gatesEverySeconds: 0 }, 0);
    const fetched = async (path) => {
      const response = await fetch(`${server.url}${path}`);
      if (!response.ok) throw new Error(`${path}: ${response.status}`);
      return response.text();
    };
    const scrape = await fetched('metrics');
    const snapshot = JSON.parse(await fetched('api/snapshot'));
    const results = [
      { what: 'the metrics reads (readMetrics: flags, live counts, queues, window, last reconcile)', ms: await time(() => readMetrics({ pool, table: GENERIC_TABLE, types, env: {} })) },
      { what: 'one /metrics scrape over HTTP (reads + prom-client text)', ms: await time(() => fetched('metrics')) },
      { what: 'one dashboard refresh over HTTP (/api/snapshot; gates measured within the last 30 s)', ms: await time(() => fetched('api/snapshot')) },
      { what: 'one dashboard refresh measuring the plan gates (once per 30 s)', ms: await time(() => gatesEachTime.get()) },
      { what: 'for comparison: cutover status (counts the whole table)', ms: await time(() => getStatus(pool, GENERIC_TABLE, types)) },
    ];
    await server.close();
    const width = Math.max(...results.map((r) => r.what.length));
    process.stdout.write(`\n${ROWS.toLocaleString('en')} rows in "Job", ${RUNS} runs each, median (Postgres ${(await pool.query('SHOW server_version')).rows[0].server_version}):\n`);
    for (const result of results) process.stdout.write(`  ${result.what.padEnd(width)}  ${String(result.ms).padStart(8)} ms\n`);
    process.stdout.write(`  /metrics is ${scrape.length.toLocaleString('en')} bytes; a snapshot ${JSON.stringify(snapshot).length.toLocaleString('en')} bytes\n`);
    process.stdout.write(`${JSON.stringify({ rows: ROWS, runs: RUNS, results })}\n`);
  } finally {
    await pool.end();
    await scratch.drop();
    await databases.close();
  }
});
