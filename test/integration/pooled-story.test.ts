// The whole story behind a real PgBouncer in `pool_mode = transaction`, as most teams connect:
// once with DIRECT_URL beside the pooled DATABASE_URL, once with the pooled URL alone. Several
// producers enqueue, both workers run as CLI processes, migrate and a rollback right after it,
// a plan that advances under its controller and one that aborts, reconcile and the dashboard,
// all on an adopted table whose guard refuses a team runner's writes. Nothing is lost, nothing
// falls back to legacy at 100 %, nothing is dead-lettered without running, and no lock stays on
// a server connection PgBouncer hands to the next client.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { adoptionSql } from '../../src/adopt/adopt.js';
import { createPool, type Pool } from '../../src/db/pool.js';
import { loadRegistry, type JobRegistry } from '../../src/jobs/registry.js';
import { startBoss } from '../../src/pgboss/boss.js';
import { ensureQueues } from '../../src/pgboss/queues.js';
import { RolloutManager } from '../../src/rollout/manager.js';
import { FlagCache } from '../../src/state/flags.js';
import { GENERIC_TABLE } from '../../src/table/table.js';
import { runCliInProcess } from '../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { quietLog, type Producer } from '../helpers/engines.js';
import { stopWorkers } from '../helpers/example.js';
import { ownership } from '../helpers/invariants.js';
import { countWhere, testPool } from '../helpers/jobs.js';
import { startPgBouncer, type PgBouncer } from '../helpers/pgbouncer.js';
import { killStragglers, startCli, type CliProcess } from '../helpers/process.js';
import { pollUntil } from '../helpers/wait.js';
import { DEMO_REGISTRY, startDashboardCli, stopDashboard } from '../dashboard/dashboard.shared.js';

let bouncer: PgBouncer;
let registry: JobRegistry;
let plans: string;
beforeAll(async () => {
  // Eight server connections for two workers, three producers, the commands and a dashboard:
  // they really share them, as behind a production pooler.
  bouncer = await startPgBouncer({ poolSize: 8 });
  registry = await loadRegistry(DEMO_REGISTRY);
  plans = await mkdtemp(join(tmpdir(), 'cutover-pooled-plans-'));
});
afterAll(async () => {
  await bouncer?.stop();
  if (plans) await rm(plans, { recursive: true, force: true });
});
afterEach(killStragglers);

async function planFile(name: string, plan: object): Promise<string> {
  const file = join(plans, `${name}.json`);
  await writeFile(file, JSON.stringify(plan));
  return file;
}

describe.each([
  { variant: 'with DIRECT_URL', direct: true },
  { variant: 'without DIRECT_URL', direct: false },
])('the whole story through PgBouncer in transaction mode, $variant', ({ direct }) => {
  let database: TestDatabase;
  /** The test's own reads and checks, on the database directly. */
  let admin: Pool;
  let env: NodeJS.ProcessEnv;
  const producers: Producer[] = [];
  const workers: CliProcess[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = testPool(database.url);
    // The generic table adopted as a team's own: the guard is on for the whole story.
    await admin.query(await adoptionSql(GENERIC_TABLE));
    env = { DATABASE_URL: bouncer.urlFor(database.url), ...(direct ? { DIRECT_URL: database.url } : {}) };
  });
  afterAll(async () => {
    await Promise.all(producers.map((producer) => producer.close()));
    await admin?.end();
    await database?.drop();
  });

  /**
   * A producer as an application behind the pooler has one: its pool and pg-boss on the pooled
   * URL, the flag cache LISTENing on DIRECT_URL when there is one, else on its TTL alone.
   */
  async function openProducer(): Promise<Producer> {
    const pool = createPool(env.DATABASE_URL!, { max: 3, applicationName: 'cutover-producer' });
    const boss = await startBoss({ databaseUrl: env.DATABASE_URL!, log: quietLog, max: 3 });
    await ensureQueues(boss, registry, quietLog);
    const flags = new FlagCache({ pool, log: quietLog, ttlMs: 200, ...(direct ? { databaseUrl: database.url } : {}) });
    await flags.listen();
    const manager = new RolloutManager({ pool, boss, registry, flags, log: quietLog });
    const producer: Producer = {
      boss,
      flags,
      manager,
      async close() {
        await flags.close();
        await boss.stop({ graceful: false, close: true });
        await pool.end();
      },
    };
    producers.push(producer);
    return producer;
  }

  const ok = async (...args: string[]) => {
    const result = await runCliInProcess(args, { env });
    expect(result.code, `cutover ${args.join(' ')}: ${result.stdout}${result.stderr}`).toBe(0);
    return result;
  };
  const startWorkers = (): [CliProcess, CliProcess] => {
    const started: [CliProcess, CliProcess] = [
      startCli(['worker', '--engine', 'legacy', '--concurrency', '4', '--poll-ms', '100'], env),
      startCli(['worker', '--engine', 'pgboss', '--concurrency', '4', '--supervise-interval', '1'], env),
    ];
    workers.push(...started);
    return started;
  };
  /** What the producers see after a flag change: at once with LISTEN, within their TTL without. */
  const refreshFlags = () => producers.forEach((producer) => producer.flags.invalidate());
  const completed = () => countWhere(admin, `status = 'COMPLETED'`);
  /** Advisory locks any backend of this database holds: a command's lock left on a pooled server connection shows here. */
  const advisoryLocks = async () =>
    (await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)).rows[0]!.n;
  const leases = async () => (await admin.query<{ n: number }>(`SELECT count(*)::int AS n FROM "CutoverLease"`)).rows[0]!.n;

  it('enqueue, both workers, migrate and rollback, plans, reconcile, the dashboard and the guard: nothing lost', async () => {
    // Both engines at 50 %: three producers and the CLI enqueue at once; both workers run them.
    await ok('rollout', 'set', '50', '--reason', 'pooled story');
    const first = await openProducer();
    const [second, third] = await Promise.all([openProducer(), openProducer()]);
    let [legacy, boss] = startWorkers();
    const enqueueFrom = (producer: Producer, type: string, payload: (n: number) => object, count: number) =>
      Promise.all(Array.from({ length: count }, (_, n) => producer.manager.enqueue(type, payload(n))));
    await Promise.all([
      ...[first, second, third].map((producer, p) => enqueueFrom(producer, 'notification.send', (n) => ({ to: `producer-${p}`, message: `half ${n}` }), 10)),
      ok('enqueue', 'notification.send', '{"to":"cli","message":"half"}', '--count', '10'),
    ]);
    await pollUntil('40 jobs done on both engines', async () => (await completed()) === 40, { timeoutMs: 30_000 });
    expect(await countWhere(admin, `engine = 'PGBOSS'`)).toBeGreaterThan(0);
    expect(await countWhere(admin, `engine = 'LEGACY'`)).toBeGreaterThan(0);

    // At 100 %: every job goes to pg-boss, none to legacy as a fallback.
    await ok('rollout', 'set', '100');
    refreshFlags();
    const full = (
      await Promise.all([
        ...[first, second, third].map((producer, p) => enqueueFrom(producer, 'notification.send', (n) => ({ to: `producer-${p}`, message: `full ${n}` }), 10)),
        enqueueFrom(first, 'evaluation.process', (n) => ({ documentId: `doc-${n}`, agentId: 'agent' }), 10),
      ])
    ).flat();
    expect(full.map((job) => `${job.engine} ${job.reason}`)).toEqual(full.map(() => 'PGBOSS bucket'));
    expect(producers.map((producer) => producer.manager.fallbackCount)).toEqual([0, 0, 0]);
    await pollUntil('80 jobs done', async () => (await completed()) === 80, { timeoutMs: 30_000 });

    // The guard: a team runner through the same pooler may not touch a pg-boss row; cutover's workers were never refused.
    const team = new pg.Pool({ connectionString: env.DATABASE_URL, max: 1, application_name: 'team-runner' });
    try {
      await expect(team.query(`UPDATE "Job" SET status = 'FAILED' WHERE id = $1`, [full[0]!.id])).rejects.toThrow(/cutover guard/);
    } finally {
      await team.end();
    }
    await stopWorkers([legacy, boss]);

    // A legacy backlog migrated to pg-boss, and a rollback right after it: the migrate left no
    // lock behind for the rollback to wait out.
    await ok('rollout', 'set', '0');
    refreshFlags();
    const backlog = await first.manager.enqueueMany('evaluation.process', Array.from({ length: 30 }, (_, n) => ({ payload: { documentId: `backlog-${n}`, agentId: 'agent' } })));
    expect(backlog.every((job) => job.engine === 'LEGACY')).toBe(true);
    expect(JSON.parse((await ok('migrate', '--type', 'evaluation.process', '--json')).stdout)).toMatchObject({ moved: 30, quarantined: 0 });
    expect(await advisoryLocks()).toBe(0);
    expect(await leases()).toBe(0);
    const rollbackStarted = performance.now();
    const rolledBack = await ok('rollback', '--type', 'evaluation.process', '--timeout', '5', '--yes', '--json');
    expect(rolledBack.stderr).not.toMatch(/waiting for a running migrate/);
    expect(performance.now() - rollbackStarted).toBeLessThan(4000);
    expect(JSON.parse(rolledBack.stdout)).toMatchObject({ moved: 30 });
    expect(await advisoryLocks()).toBe(0);
    await ok('rollout', 'unkill', '--type', 'evaluation.process');
    // The workers run the rolled-back backlog (on legacy) while the plans go on.
    [legacy, boss] = startWorkers();

    // A plan that advances: its controller (a lease without DIRECT_URL, a session lock with it)
    // stops on a pause, shows as attached in status and on the dashboard, and finishes when advanced.
    const ramp = await planFile('ramp', { name: 'ramp', jobType: 'notification.send', steps: [{ setWeight: 50 }, { pause: {} }, { setWeight: 100 }] });
    const controller = startCli(['plan', 'run', ramp, '--tick-ms', '100'], env);
    await pollUntil('the ramp on its pause', async () => {
      if (controller.child.exitCode !== null) throw new Error(`plan run exited ${controller.child.exitCode}: ${controller.stderr()}`);
      return (await admin.query(`SELECT 1 FROM "RolloutPlanRun" WHERE "planName" = 'ramp' AND "currentStep" = 1`)).rowCount === 1;
    });
    const status = JSON.parse((await ok('status', '--json')).stdout) as { plans: { planName: string; controller: { kind: string } | null }[] };
    expect(status.plans.map((run) => [run.planName, run.controller?.kind])).toEqual([['ramp', direct ? 'session' : 'lease']]);
    expect(await leases()).toBe(direct ? 0 : 1);
    const dashboard = await startDashboardCli(env.DATABASE_URL!, [], direct ? { DIRECT_URL: database.url } : {});
    try {
      const response = await fetch(new URL('api/snapshot', dashboard.url));
      const snapshot = (await response.json()) as { plans: { name: string; controlled: boolean }[]; pgbossInstalled: boolean };
      expect(response.status, JSON.stringify(snapshot)).toBe(200);
      expect(snapshot.plans.map((plan) => [plan.name, plan.controlled])).toEqual([['ramp', true]]);
      expect(snapshot.pgbossInstalled).toBe(true);
    } finally {
      await stopDashboard(dashboard);
    }
    await ok('plan', 'advance', '--yes');
    expect((await controller.exited).code, controller.stderr()).toBe(0);
    expect((await admin.query(`SELECT state FROM "RolloutPlanRun" WHERE "planName" = 'ramp'`)).rows).toEqual([{ state: 'completed' }]);
    expect(await leases()).toBe(0);

    // A plan that aborts: it rolls its type back and sets the kill switch, released after.
    const doomed = await planFile('doomed', { name: 'doomed', jobType: 'evaluation.process', steps: [{ setWeight: 100 }, { pause: {} }] });
    await ok('plan', 'start', doomed);
    await ok('plan', 'advance', '--yes');
    await ok('plan', 'abort', '--yes');
    expect((await admin.query(`SELECT state FROM "RolloutPlanRun" WHERE "planName" = 'doomed'`)).rows).toEqual([{ state: 'aborted' }]);
    await ok('rollout', 'unkill', '--type', 'evaluation.process');

    // The rolled-back backlog, on legacy, has run meanwhile; every job ends done.
    await pollUntil('all 110 jobs done', async () => (await completed()) === 110, { timeoutMs: 45_000 });
    await stopWorkers([legacy, boss]);

    const reconciled = JSON.parse((await ok('reconcile', '--json')).stdout) as { total: number };
    expect(reconciled.total).toBe(0);

    // 0 lost, 0 fallbacks, 0 dead-lettered unrun (none dead-lettered at all), every delivery once.
    expect(await countWhere(admin, 'TRUE')).toBe(110);
    expect(await countWhere(admin, `status <> 'COMPLETED'`)).toBe(0);
    expect(await countWhere(admin, `"routeReason" = 'fallback'`)).toBe(0);
    expect(await ownership(admin)).toMatchObject({ lost: 0, inBoth: 0, orphans: 0 });
    const { rows: boss_ } = await admin.query<{ dead: number; failed: number }>(
      `SELECT count(*) FILTER (WHERE name LIKE '%.dlq')::int AS dead, count(*) FILTER (WHERE state = 'failed')::int AS failed FROM pgboss.job`,
    );
    expect(boss_[0]).toEqual({ dead: 0, failed: 0 });
    const { rows: deliveries } = await admin.query<{ runs: number }>(
      `SELECT count(d.*)::int AS runs FROM "Job" j LEFT JOIN "DemoDelivery" d ON d."jobId" = j.id::text WHERE j.type = 'notification.send' GROUP BY j.id`,
    );
    expect(deliveries.filter((row) => row.runs !== 1)).toEqual([]);
    expect(workers.map((worker) => worker.stderr()).join('\n')).not.toMatch(/cutover guard|prepared statement|permission denied/);
    expect(await advisoryLocks()).toBe(0);
    expect(await leases()).toBe(0);
  }, 120_000);
});
