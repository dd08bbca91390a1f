// A known dual run for the dashboard and metrics tests, and the dashboard started as an operator
// starts it. Every number the tests expect follows from the rows written here.
import { join } from 'node:path';
import type { Pool } from '../../src/db/pool.js';
import type { JobRegistry } from '../../src/jobs/registry.js';
import { quietLog, type Producer } from '../helpers/engines.js';
import { changeFlag } from '../../src/state/flags.js';
import { planSchema } from '../../src/plans/plan.js';
import { startPlan } from '../../src/plans/plan-runner.js';
import { startCli, type CliProcess } from '../helpers/process.js';
import { pollUntil } from '../helpers/wait.js';
import { repoRoot } from '../helpers/cli.js';
import { pgbossJob } from '../factories/pgboss.js';

export const EVALUATION = 'evaluation.process';
/** The demo jobs, which the CLI serves when given no registry: the page and the producer then know the same types. */
export const DEMO_REGISTRY = join(repoRoot, 'dist', 'demo', 'registry.js');

interface Finished {
  type: string;
  engine: 'LEGACY' | 'PGBOSS';
  status: 'COMPLETED' | 'FAILED';
  latency: number;
  count: number;
  routeReason?: string;
}

/** Finished rows created 20 minutes ago, each done `latency` seconds after creation. */
async function addFinished(pool: Pool, rows: Finished): Promise<void> {
  await pool.query(
    `INSERT INTO "Job" (id, type, payload, status, attempts, "maxAttempts", "createdAt", "updatedAt", "startedAt", "completedAt", engine, "pgbossJobId", "routeReason")
     SELECT id, $1, '{}', $2::"JobStatus", 1, 1, created, created + make_interval(secs => $3), created, created + make_interval(secs => $3),
            $4::"JobEngine", CASE WHEN $4 = 'PGBOSS' THEN id END, $6
       FROM (SELECT gen_random_uuid() AS id, (now() AT TIME ZONE 'UTC') - interval '20 minutes' - make_interval(secs => $3) AS created FROM generate_series(1, $5)) s`,
    [rows.type, rows.status, rows.latency, rows.engine, rows.count, rows.routeReason ?? 'bucket'],
  );
}

export interface DualRun {
  /** Rows waiting now per engine, for evaluation.process. */
  waiting: { LEGACY: number; PGBOSS: number };
}

/**
 * evaluation.process at 50 % with 16 jobs enqueued through the RolloutManager (no worker runs:
 * they wait), one legacy row running, finished rows of both engines in the last hour (one legacy
 * failure retried and then completed: not a failure of its job), two dead letters, a hand-back
 * and a fallback, a reconcile run with one orphan, and a plan on an analysis step.
 */
export async function seedDualRun(target: { pool: Pool; producer: Producer; registry: JobRegistry; url: string }): Promise<DualRun> {
  const { pool, producer } = target;
  await changeFlag(pool, { jobType: EVALUATION, basisPoints: 5000 }, { actor: 'test', action: 'flag.set', reason: 'dual run' });
  const waiting = { LEGACY: 0, PGBOSS: 0 };
  for (let i = 0; i < 16; i += 1) {
    const result = await producer.manager.enqueue(EVALUATION, { documentId: `doc-${i}`, agentId: 'agent-1' });
    waiting[result.engine] += 1;
  }
  // Guard: a split that put every job on one side would not test a dual run.
  if (!waiting.LEGACY || !waiting.PGBOSS) throw new Error(`the 16 jobs did not split: ${JSON.stringify(waiting)}`);

  await pool.query(
    `INSERT INTO "Job" (id, type, payload, status, attempts, "createdAt", "updatedAt", "startedAt", engine, "routeReason")
     VALUES (gen_random_uuid(), $1, '{}', 'RUNNING', 1, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', 'LEGACY', 'bucket'),
            (gen_random_uuid(), $1, '{}', 'PENDING', 1, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', NULL, 'LEGACY', 'handedback'),
            (gen_random_uuid(), 'notification.send', '{}', 'PENDING', 0, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC', NULL, 'LEGACY', 'fallback')`,
    [EVALUATION],
  );
  waiting.LEGACY += 1; // the hand-back

  await addFinished(pool, { type: EVALUATION, engine: 'LEGACY', status: 'COMPLETED', latency: 2, count: 3 });
  await addFinished(pool, { type: EVALUATION, engine: 'LEGACY', status: 'FAILED', latency: 4, count: 1 });
  await addFinished(pool, { type: EVALUATION, engine: 'PGBOSS', status: 'COMPLETED', latency: 0.3, count: 3 });
  await addFinished(pool, { type: EVALUATION, engine: 'PGBOSS', status: 'COMPLETED', latency: 2, count: 2 });
  await addFinished(pool, { type: EVALUATION, engine: 'PGBOSS', status: 'FAILED', latency: 1, count: 2 });
  await addFinished(pool, { type: 'import.article', engine: 'LEGACY', status: 'COMPLETED', latency: 600, count: 1 });
  // A legacy attempt that failed and was retried as a new row, which completed 20 s after the first attempt was created.
  await pool.query(
    `WITH first AS (
       INSERT INTO "Job" (id, type, payload, status, attempts, "createdAt", "updatedAt", "completedAt", engine, "routeReason")
       VALUES (gen_random_uuid(), $1, '{}', 'FAILED', 1, (now() AT TIME ZONE 'UTC') - interval '20 minutes', now() AT TIME ZONE 'UTC', (now() AT TIME ZONE 'UTC') - interval '20 minutes' + interval '5 seconds', 'LEGACY', 'bucket')
       RETURNING id, "createdAt")
     INSERT INTO "Job" (id, type, payload, status, attempts, "originalJobId", "createdAt", "updatedAt", "completedAt", engine, "routeReason")
     SELECT gen_random_uuid(), $1, '{}', 'COMPLETED', 2, id, "createdAt" + interval '5 seconds', now() AT TIME ZONE 'UTC', "createdAt" + interval '20 seconds', 'LEGACY', 'bucket' FROM first`,
    [EVALUATION],
  );

  for (let i = 0; i < 2; i += 1) await pgbossJob({ boss: producer.boss, pool }, { queue: `${EVALUATION}.dlq` });
  await pool.query(
    `INSERT INTO "ReconcileRun" ("startedAt", "finishedAt", findings, summary)
     VALUES (now() - interval '3 minutes', now() - interval '3 minutes', 1, '{"counts": {"lost": 0, "orphan": 1, "drift": 0, "stuck": 0, "double": 0}, "fixed": null, "types": []}')`,
  );
  const plan = planSchema.parse({
    name: 'ramp',
    jobType: EVALUATION,
    steps: [{ analysis: { gates: { minSamples: 3 }, interval: 3600, count: 10 } }, { setWeight: 100 }],
  });
  await startPlan({ pool, databaseUrl: target.url, registry: target.registry, log: quietLog, actor: 'test' }, plan);
  return { waiting };
}

export interface RunningDashboard {
  process: CliProcess;
  url: string;
  /** Printed only when generated (not when CUTOVER_DASHBOARD_TOKEN gave it). */
  token?: string;
  writes: boolean;
}

/** `cutover dashboard --json` on a free port, once it has printed where it listens. */
export async function startDashboardCli(databaseUrl: string, args: readonly string[] = [], env: NodeJS.ProcessEnv = {}): Promise<RunningDashboard> {
  const process = startCli(['dashboard', '--port', '0', '--refresh', '1', '--json', '--database-url', databaseUrl, ...args], env);
  const printed = await pollUntil(
    'the dashboard to print its address',
    async () => {
      if (process.child.exitCode !== null) throw new Error(`the dashboard exited (${process.child.exitCode}): ${process.stderr()}`);
      try {
        return JSON.parse(process.stdout()) as Omit<RunningDashboard, 'process'>;
      } catch {
        return undefined;
      }
    },
    { timeoutMs: 30_000 },
  );
  return { process, ...printed };
}

export async function stopDashboard(dashboard: RunningDashboard): Promise<void> {
  dashboard.process.kill('SIGTERM');
  const { code } = await dashboard.process.exited;
  if (code !== 0) throw new Error(`the dashboard exited ${code}: ${dashboard.process.stderr()}`);
}
