import { spawn, type ChildProcess } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createPool, type Pool } from '../db/pool.js';
import { createRegistry, type JobRegistry } from '../jobs/registry.js';
import type { Logger } from '../support/log.js';
import { migrateBacklog, type MigrateSummary } from '../moves/migrate.js';
import { reconcile, type ReconcileReport } from '../reconcile/reconcile.js';
import { compiledEntry, packageRoot } from '../support/paths.js';
import { startBoss } from '../pgboss/boss.js';
import { ensureQueues } from '../pgboss/queues.js';
import { changeFlag, DEFAULT_FLAG, FlagCache } from '../state/flags.js';
import { RolloutManager } from '../rollout/manager.js';
import { loadPlan } from '../plans/plan.js';
import { runPlan, type PlanRun, type TickResult } from '../plans/plan-runner.js';
import demoRegistryJobs, { DEMO_FAULT_ENV } from './registry.js';
import { deleteQueueJobs, pgbossInstalled, pgbossRelations } from '../pgboss-schema/reads.js';

export interface DemoOptions {
  databaseUrl: string;
  log: Logger;
  /** Progress lines for a person. */
  say: (line: string) => void;
  /** Run the second pass, where pg-boss breaks and the plan aborts. @defaultValue true */
  fault?: boolean;
  /** Legacy jobs already waiting when the demo starts. @defaultValue 1200 */
  backlog?: number;
  /** New jobs per second from the demo's producer. @defaultValue 15 */
  rate?: number;
  signal?: AbortSignal;
}

export interface DemoSummary {
  passes: { plan: string; state: PlanRun['state']; reason: string | null }[];
  migrate: MigrateSummary;
  reconcile: ReconcileReport;
  seconds: number;
}

const DEMO_TABLES = ['Job', 'RolloutFlag', 'RolloutEvent', 'RolloutPlanRun', 'ReconcileRun', 'MigrationQuarantine', 'DemoDelivery'];

async function reset(pool: Pool, registry: JobRegistry): Promise<void> {
  await pool.query(`TRUNCATE ${DEMO_TABLES.map((t) => `"${t}"`).join(', ')}`);
  const { rows } = await pool.query<{ installed: boolean }>(pgbossInstalled, [...pgbossRelations]);
  if (rows[0]?.installed) {
    const queues = registry.names().flatMap((name) => [name, `${name}.dlq`]);
    await pool.query(deleteQueueJobs, [queues]);
  }
}

/** What a legacy producer left behind: plain INSERTs, some old, a few that can't be mapped. */
async function seedBacklog(pool: Pool, count: number): Promise<void> {
  await pool.query(
    `INSERT INTO "Job" (id, type, payload, priority, "maxAttempts", "createdAt", "updatedAt")
     SELECT gen_random_uuid(),
            CASE WHEN i % 10 = 0 THEN 'import.article' WHEN i % 10 = 1 THEN 'notification.send' ELSE 'evaluation.process' END,
            CASE WHEN i % 10 = 0 THEN jsonb_build_object('url', 'https://example.com/article/' || i)
                 WHEN i % 10 = 1 THEN jsonb_build_object('to', 'user' || i || '@example.com', 'message', 'report ready')
                 ELSE jsonb_build_object('documentId', 'doc-' || i, 'agentId', 'agent-' || (i % 7), 'simulateMs', 20 + (i % 5) * 15) END,
            CASE WHEN i % 50 = 0 THEN 1 ELSE 0 END, 4,
            (now() AT TIME ZONE 'UTC') - make_interval(secs => (i % 30)), now() AT TIME ZONE 'UTC'
       FROM generate_series(1, $1) AS i`,
    [count],
  );
  // Rows the mapper must refuse: a type nobody defines, and a payload that fails its schema.
  await pool.query(
    `INSERT INTO "Job" (id, type, payload, "maxAttempts", "updatedAt") VALUES
       (gen_random_uuid(), 'report.legacy-only', '{}', 1, now() AT TIME ZONE 'UTC'),
       (gen_random_uuid(), 'import.article', '{"url": "not a url"}', 1, now() AT TIME ZONE 'UTC')`,
  );
}

function startWorker(engine: 'legacy' | 'pgboss', databaseUrl: string, faultFile: string): ChildProcess {
  const args = [compiledEntry('cli/main.js'), 'worker', '--engine', engine, '--registry', compiledEntry('demo/registry.js'), '--database-url', databaseUrl];
  if (engine === 'pgboss') args.push('--concurrency', '16', '--supervise-interval', '2');
  else args.push('--concurrency', '4', '--poll-ms', '250');
  return spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'ignore'], env: { ...process.env, [DEMO_FAULT_ENV]: faultFile, CUTOVER_LOG_LEVEL: 'error' } });
}

async function stopWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

async function counts(pool: Pool): Promise<string> {
  const { rows } = await pool.query<{ engine: string; status: string; n: string }>(`SELECT engine::text, status::text, count(*) AS n FROM "Job" GROUP BY 1, 2`);
  const of = (engine: string, status: string) => rows.find((r) => r.engine === engine && r.status === status)?.n ?? '0';
  return ['LEGACY', 'PGBOSS']
    .map((engine) => `${engine.toLowerCase()}: ${of(engine, 'COMPLETED')} done, ${of(engine, 'PENDING')} waiting, ${of(engine, 'RUNNING')} running, ${of(engine, 'FAILED')} failed`)
    .join(' | ');
}

async function waitSettled(pool: Pool, say: (line: string) => void, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 0;
  for (;;) {
    const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM "Job" WHERE status IN ('PENDING', 'RUNNING')`);
    if (rows[0]?.n === '0' || Date.now() > deadline || signal?.aborted) return;
    if (Date.now() - last > 2000) {
      say(`  settling: ${await counts(pool)}`);
      last = Date.now();
    }
    await sleep(250);
  }
}

/**
 * The whole story on one database: a legacy backlog, both engines running, a rollout plan
 * ramping new jobs to pg-boss under gates, the backlog migrated, then a second pass where
 * pg-boss breaks and the plan aborts into a rollback, and finally a reconcile.
 */
export async function runDemo(options: DemoOptions): Promise<DemoSummary> {
  const started = performance.now();
  const { databaseUrl, log, say } = options;
  const registry = createRegistry(demoRegistryJobs);
  const pool = createPool(databaseUrl, { max: 8, applicationName: 'cutover-demo' });
  const faultFile = join(tmpdir(), `cutover-demo-fault-${process.pid}`);
  const boss = await startBoss({ databaseUrl, log, max: 4 });
  const flags = new FlagCache({ pool, databaseUrl, log, ttlMs: 1000 });
  const workers: ChildProcess[] = [];
  let producing = false;
  let producer: Promise<void> = Promise.resolve();
  try {
    await reset(pool, registry);
    await ensureQueues(boss, registry, log);
    await flags.listen();
    const manager = new RolloutManager({ pool, boss, registry, flags, log });
    const backlog = options.backlog ?? 1200;
    await seedBacklog(pool, backlog);
    say(`1. A legacy backlog: ${backlog + 2} jobs waiting in the Job table (2 of them can't be mapped).`);

    workers.push(startWorker('legacy', databaseUrl, faultFile), startWorker('pgboss', databaseUrl, faultFile));
    say('2. Legacy runner (a child process per job) and pg-boss worker started.');

    const rate = options.rate ?? 15;
    producing = true;
    producer = (async () => {
      let n = 0;
      while (producing && !options.signal?.aborted) {
        await manager.enqueue('evaluation.process', { documentId: `new-${n}`, agentId: `agent-${n % 5}`, simulateMs: 30 }).catch((error: unknown) => log.warn({ err: error }, 'demo producer'));
        n += 1;
        await sleep(1000 / rate);
      }
    })();

    const plan = await loadPlan(join(packageRoot, 'rollout', 'demo.yaml'));
    const context = { pool, databaseUrl, registry, log, actor: 'demo', boss, settleMs: 1000, baselineSeconds: 3600 };
    const onTick = (result: TickResult) => {
      if (result.event === 'waiting' && !result.gates) return;
      const step = result.run.plan.steps[result.run.currentStep];
      const gates = result.gates ? ` — gates ${result.gates.status}: ${result.gates.results.map((g) => `${g.gate} ${g.status}`).join(', ')}` : '';
      say(`   [${result.event}] step ${Math.min(result.run.currentStep + 1, result.run.plan.steps.length)}/${result.run.plan.steps.length}${step && 'setWeight' in step ? ` (${step.setWeight}%)` : ''}${gates}`);
    };
    say(`3. Rollout plan '${plan.name}': new jobs move to pg-boss step by step while the gates pass.`);
    const first = await runPlan(context, plan, { tickMs: 500, onTick, ...(options.signal ? { signal: options.signal } : {}) });
    say(`   plan ${first.state}. ${await counts(pool)}`);

    say('4. Migrating the legacy backlog to pg-boss (batches of 500, each one transaction).');
    const migrated = await migrateBacklog({ pool, databaseUrl, boss, registry, log, actor: 'demo', batchSize: 500 });
    say(`   moved ${migrated.moved}, quarantined ${migrated.quarantined} (${migrated.quarantine.map((q) => q.reason).join('; ')})`);
    await waitSettled(pool, say, 60_000, options.signal);

    const passes = [{ plan: plan.name, state: first.state, reason: first.reason }];
    if (options.fault !== false && !options.signal?.aborted) {
      say('5. Second pass: pg-boss is broken (injected fault). The plan must abort and roll back by itself.');
      await changeFlag(pool, { jobType: DEFAULT_FLAG, basisPoints: 0 }, { actor: 'demo', action: 'flag.set', reason: 'demo second pass' });
      await writeFile(faultFile, 'broken');
      const second = await runPlan(context, plan, { tickMs: 500, onTick, ...(options.signal ? { signal: options.signal } : {}) });
      await rm(faultFile, { force: true });
      say(`   plan ${second.state}: ${second.reason ?? ''}`);
      passes.push({ plan: plan.name, state: second.state, reason: second.reason });
    }
    producing = false;
    await producer;
    say('6. Letting both engines finish what they hold.');
    await waitSettled(pool, say, 90_000, options.signal);
    await Promise.all(workers.map(stopWorker));

    const report = await reconcile({ pool, registry, log, actor: 'demo', graceSeconds: 0, sinceSeconds: 86_400, minSample: 30 });
    return { passes, migrate: migrated, reconcile: report, seconds: Math.round(performance.now() - started) / 1000 };
  } finally {
    producing = false;
    await producer.catch(() => undefined);
    await Promise.all(workers.map(stopWorker));
    await rm(faultFile, { force: true });
    await flags.close();
    await boss.stop({ graceful: false, close: true }).catch(() => undefined);
    await pool.end();
  }
}
