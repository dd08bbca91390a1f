#!/usr/bin/env node
// The README's picture of the dashboard (docs/dashboard.png), taken during a demo-like run:
// `node scripts/dashboard-screenshot.mjs [--out docs/dashboard.png] [--live 45]` after
// `npm run build`, with Debian's chromium installed (apt-get install chromium).
// An hour of history is seeded (pg-boss's share ramping from 0 to 50 %), then both engines run
// live behind the RolloutManager at 50 % while a plan waits on its gates, and the page is shot.
// Uses BENCH_DATABASE_URL's server if set, else an embedded Postgres in a temp dir.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { Databases, withServer } from './bench/lib.mjs';
import { createPool } from '../dist/db/pool.js';
import { loadRegistry } from '../dist/jobs/registry.js';
import { createLogger } from '../dist/support/log.js';
import { reconcile } from '../dist/reconcile/reconcile.js';
import { startBoss } from '../dist/pgboss/boss.js';
import { ensureQueues } from '../dist/pgboss/queues.js';
import { planSchema } from '../dist/plans/plan.js';
import { startPlan } from '../dist/plans/plan-runner.js';
import { changeFlag, FlagCache } from '../dist/state/flags.js';
import { RolloutManager } from '../dist/rollout/manager.js';

const { values } = parseArgs({ options: { out: { type: 'string', default: 'docs/dashboard.png' }, live: { type: 'string', default: '45' } } });
const log = createLogger({ level: 'warn', name: 'dashboard-screenshot' });
const cli = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const TOKEN = randomBytes(18).toString('base64url');

/**
 * The last hour as a dual run leaves it: 4 jobs a second, pg-boss's share growing from 0 to
 * 50 %, legacy slower to pick up (its poll) than pg-boss, a few failures on both sides.
 */
async function seedHistory(pool) {
  await pool.query(
    `INSERT INTO "Job" (id, type, payload, status, attempts, "maxAttempts", "createdAt", "updatedAt", "startedAt", "completedAt", engine, "pgbossJobId", "routeReason", bucket)
     SELECT id, type, '{"documentId": "seeded"}', (CASE WHEN r < fail THEN 'FAILED' ELSE 'COMPLETED' END)::"JobStatus", 1, 1,
            created, created + make_interval(secs => latency), created + make_interval(secs => latency * 0.6), created + make_interval(secs => latency),
            engine::"JobEngine", CASE WHEN engine = 'PGBOSS' THEN id END, 'bucket', (random() * 9999)::int
       FROM (SELECT gen_random_uuid() AS id, random() AS r,
                    CASE WHEN i % 10 = 0 THEN 'import.article' ELSE 'evaluation.process' END AS type,
                    (now() AT TIME ZONE 'UTC') - make_interval(secs => 3600 - i * 0.25) AS created,
                    CASE WHEN random() < (i / 14400.0) * 0.5 THEN 'PGBOSS' ELSE 'LEGACY' END AS engine,
                    CASE WHEN i % 997 < 10 THEN 0.06 ELSE 0.015 END AS fail, i
               FROM generate_series(1, 14160) AS i) s,
            LATERAL (SELECT CASE WHEN engine = 'PGBOSS' THEN 0.08 + random() * 0.3 + (random() ^ 8) * 2 ELSE 0.4 + random() * 1.2 + (random() ^ 8) * 5 END AS latency) l`,
  );
}

function start(args) {
  return spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, CUTOVER_LOG_LEVEL: 'error', CUTOVER_DASHBOARD_TOKEN: TOKEN } });
}

async function stop(child) {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

await withServer(async (adminUrl) => {
  // Migrated, with pg-boss's schema, like every benchmark database.
  const databases = new Databases(adminUrl);
  const scratch = await databases.create('screenshot');
  const databaseUrl = scratch.url;
  const pool = createPool(databaseUrl, { max: 6 });
  const children = [];
  let producing = true;
  let producer = Promise.resolve();
  const boss = await startBoss({ databaseUrl, log, max: 4 });
  const flags = new FlagCache({ pool, databaseUrl, log, ttlMs: 1000 });
  try {
    const registry = await loadRegistry();
    await ensureQueues(boss, registry, log);
    await flags.listen();
    await seedHistory(pool);
    await changeFlag(pool, { jobType: 'evaluation.process', basisPoints: 2500 }, { actor: 'ana', action: 'flag.set', reason: 'first step of the ramp' });
    await changeFlag(pool, { jobType: 'evaluation.process', basisPoints: 5000 }, { actor: 'ana', action: 'flag.set', reason: 'soak was clean' });
    const plan = planSchema.parse({
      name: 'evaluation-ramp',
      jobType: 'evaluation.process',
      steps: [{ analysis: { gates: { minSamples: 30, maxFailureRateDelta: 0.02, maxP95LatencyRatio: 1.5 }, interval: '5m', count: 12 } }, { setWeight: 100 }],
    });
    await startPlan({ pool, databaseUrl, registry, log, actor: 'ana' }, plan);
    await reconcile({ pool, registry, log, actor: 'ana', graceSeconds: 60, sinceSeconds: 3600 });

    children.push(start(['worker', '--engine', 'legacy', '--concurrency', '4', '--poll-ms', '500', '--database-url', databaseUrl]));
    children.push(start(['worker', '--engine', 'pgboss', '--concurrency', '8', '--database-url', databaseUrl]));
    const manager = new RolloutManager({ pool, boss, registry, flags, log });
    producer = (async () => {
      for (let n = 0; producing; n += 1) {
        const [type, payload] = n % 10 === 0 ? ['import.article', { url: `https://example.com/a/${n}` }] : ['evaluation.process', { documentId: `doc-${n}`, agentId: `agent-${n % 5}`, simulateMs: 40 + (n % 7) * 20 }];
        await manager.enqueue(type, payload).catch((error) => log.warn({ err: error }, 'producer'));
        await sleep(250);
      }
    })();

    const dashboard = start(['dashboard', '--port', '0', '--json', '--allow-writes', '--refresh', '2', '--database-url', databaseUrl]);
    children.push(dashboard);
    let printed = '';
    dashboard.stdout.on('data', (chunk) => (printed += chunk));
    while (!printed.trim().endsWith('}')) await sleep(100);
    const { url: page } = JSON.parse(printed);

    process.stderr.write(`dual run live for ${values.live} s…\n`);
    await sleep(Number(values.live) * 1000);
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium' });
    try {
      const tab = await browser.newPage({ viewport: { width: 1440, height: 900 }, deviceScaleFactor: 1 });
      await tab.goto(page);
      await tab.waitForSelector('[data-gate]');
      await sleep(500);
      await tab.screenshot({ path: values.out, fullPage: true });
      process.stderr.write(`wrote ${values.out}\n`);
    } finally {
      await browser.close();
    }
  } finally {
    producing = false;
    await producer;
    await Promise.all(children.map(stop));
    await flags.close();
    await boss.stop({ graceful: false, close: true });
    await pool.end();
    await scratch.drop();
    await databases.close();
  }
});
