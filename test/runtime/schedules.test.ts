import { PgBoss } from 'pg-boss';
import { z } from 'zod';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SESSION_OPTIONS } from '../../src/db/pool.js';
import { defineJob } from '../../src/jobs/define.js';
import { assertSchedulePayloads, createRegistry, type JobRegistry } from '../../src/jobs/registry.js';
import { listSchedules, startSchedules, TICK_QUEUE, tickJobId, tickTime, type TickData } from '../../src/runtime/schedules.js';
import { ensureQueues } from '../../src/pgboss/queues.js';
import { FlagCache } from '../../src/state/flags.js';
import { RolloutManager } from '../../src/rollout/manager.js';
import { quietLog, setPercent } from '../helpers/engines.js';
import { useDatabaseFixture } from '../helpers/fixture.js';
import { pollUntil } from '../helpers/wait.js';
import { join } from 'node:path';
import { loadRegistry } from '../../src/jobs/registry.js';
import { repoRoot, runCliInProcess } from '../helpers/cli.js';
import { killStragglers, startCli } from '../helpers/process.js';
import { reviveCompleted } from '../factories/pgboss.js';

const scheduleRegistry = join(repoRoot, 'test', 'fixtures', 'schedule-registry.mjs');

// Recurring jobs: pg-boss's scheduler is the clock, one cron pass across
// every process; each tick enqueues its job once through the RolloutManager, which routes it.

const fixture = useDatabaseFixture();

const every = (name: string, schedule: { cron: string; tz?: string }, extra: { payload?: unknown } = {}) =>
  defineJob({ name, schema: z.object({ source: z.string() }), retry: { limit: 0 }, schedule: { ...schedule, payload: extra.payload ?? { source: 'schedule' } }, async handler() {
    return null;
  } });

/** One minute each, in two zones: the routing test's two types. */
const recurring = () => createRegistry([every('tick.legacy', { cron: '* * * * *' }), every('tick.pgboss', { cron: '* * * * *', tz: 'Europe/Paris' })]);

interface Instance {
  boss: PgBoss;
  manager: RolloutManager;
  stopSchedules: () => Promise<void>;
  close(): Promise<void>;
}

const instances: Instance[] = [];
afterEach(async () => {
  await Promise.all(instances.splice(0).map((instance) => instance.close()));
  await killStragglers();
});

/**
 * What a pg-boss worker process holds: its own pg-boss (with the scheduler on, as every worker
 * may run it: they share one cron pass), flag cache and RolloutManager, and startSchedules.
 */
async function startInstance(registry: JobRegistry, options: { scheduler?: boolean } = {}): Promise<Instance> {
  const { database, pool } = fixture;
  const boss = new PgBoss({
    connectionString: database.url,
    schema: 'pgboss',
    max: 4,
    options: SESSION_OPTIONS,
    supervise: false,
    schedule: options.scheduler ?? true,
    useListenNotify: true,
    // A pass every second and a send-it poll every second: ticks land within ~2 s of their minute.
    cronMonitorIntervalSeconds: 1,
    cronWorkerIntervalSeconds: 1,
  });
  boss.on('error', () => undefined);
  await boss.start();
  await ensureQueues(boss, registry, quietLog);
  const flags = new FlagCache({ pool, databaseUrl: database.url, log: quietLog, ttlMs: 200 });
  const manager = new RolloutManager({ pool, boss, registry, flags, log: quietLog });
  const stopSchedules = await startSchedules({ boss, manager, registry, pool, log: quietLog, pollingIntervalSeconds: 1 });
  const instance: Instance = {
    boss,
    manager,
    stopSchedules,
    async close() {
      await stopSchedules();
      await flags.close();
      await boss.stop({ graceful: false, close: true });
    },
  };
  instances.push(instance);
  return instance;
}

interface TickRow {
  type: string;
  minute: Date;
  created: Date;
}

/** Every tick pg-boss filed, with the minute it was filed in. */
async function tickJobs(): Promise<TickRow[]> {
  const { rows } = await fixture.pool.query<TickRow>(
    `SELECT data->>'type' AS type, date_trunc('minute', created_on) AS minute, created_on AS created FROM pgboss.job WHERE name = $1 ORDER BY created_on`,
    [TICK_QUEUE],
  );
  return rows;
}

interface RowSummary {
  id: string;
  type: string;
  engine: string;
  routeReason: string;
  pgboss: boolean;
}

async function jobsOf(type: string): Promise<RowSummary[]> {
  const { rows } = await fixture.pool.query<RowSummary>(
    `SELECT j.id::text, j.type, j.engine::text AS engine, j."routeReason", EXISTS (SELECT 1 FROM pgboss.job b WHERE b.name = j.type AND b.id = j.id) AS pgboss
       FROM "Job" j WHERE j.type = $1 ORDER BY j."createdAt"`,
    [type],
  );
  return rows;
}

describe('recurring jobs', () => {
  beforeEach(async () => {
    await setPercent(fixture.pool, 0, 'tick.legacy');
    await setPercent(fixture.pool, 100, 'tick.pgboss');
  });

  it('with three `cutover worker` processes on one database, each tick is enqueued once and routed by the flags', async () => {
    const registry = await loadRegistry(scheduleRegistry);
    // A schedule created in a minute's last seconds has that minute's occurrence forwarded in
    // the next one, where it reads as the next occurrence (whose own tick then finds its job
    // done): one occurrence from before the schedule existed is skipped. Start clear of that
    // edge, so that each minute here shows exactly one tick.
    await pollUntil('a minute with time to spare', async () => new Date().getUTCSeconds() < 40, { timeoutMs: 25_000, intervalMs: 200 });
    const workers = [0, 1, 2].map(() => startCli(['worker', '--engine', 'pgboss', '--registry', scheduleRegistry, '--database-url', fixture.database.url]));
    await pollUntil('the three workers to start', async () => Number((await fixture.pool.query(`SELECT count(*) AS n FROM "WorkerHeartbeat" WHERE engine = 'PGBOSS'`)).rows[0].n) === 3, { timeoutMs: 30_000 });

    // pg-boss's cron pass runs every 30 s in a worker: wait for two minutes' ticks of each type,
    // so two ticks of each have passed through three schedulers.
    await pollUntil(
      'two ticks of each type enqueued',
      async () => (await jobsOf('tick.legacy')).length >= 2 && (await jobsOf('tick.pgboss')).length >= 2,
      { timeoutMs: 170_000, intervalMs: 500 },
    );
    for (const worker of workers) worker.kill('SIGTERM');
    expect((await Promise.all(workers.map((worker) => worker.exited))).map((exit) => exit.code)).toEqual([0, 0, 0]);

    const ticks = await tickJobs();
    for (const type of ['tick.legacy', 'tick.pgboss']) {
      const { cron, tz } = registry.require(type).schedule!;
      const filed = ticks.filter((tick) => tick.type === type);
      // One scheduler across the three processes: one tick per minute, not three.
      const minutes = filed.map((tick) => tick.minute.toISOString());
      expect(new Set(minutes).size, `ticks of ${type}: ${minutes.join(', ')}`).toBe(minutes.length);
      // Each tick's job is the one of its minute, enqueued once: one row per tick, no other.
      const expected = filed.map((tick) => tickJobId(type, tickTime({ cron, tz }, tick.created)));
      const rows = await jobsOf(type);
      expect(rows.map((row) => row.id).sort()).toEqual(expected.sort());
      expect(rows.length).toBeGreaterThanOrEqual(2);
    }
    // Routed like any other job: 0 % stays on legacy, 100 % goes to pg-boss with its row.
    for (const row of await jobsOf('tick.legacy')) expect(row).toMatchObject({ engine: 'LEGACY', routeReason: 'bucket', pgboss: false });
    for (const row of await jobsOf('tick.pgboss')) expect(row).toMatchObject({ engine: 'PGBOSS', routeReason: 'bucket', pgboss: true });
    const status = JSON.parse((await runCliInProcess(['status', '--json', '--registry', scheduleRegistry, '--database-url', fixture.database.url])).stdout) as { schedules: { type: string; scheduled: boolean; nextTickAt: string }[] };
    expect(status.schedules.map((info) => [info.type, info.scheduled])).toEqual([['tick.legacy', true], ['tick.pgboss', true]]);
  }, 240_000);

  it('duplicated and retried ticks enqueue nothing twice', async () => {
    const registry = recurring();
    // Schedulers off: the ticks are sent by hand, several for one occurrence, to two workers.
    const sender = await startInstance(registry, { scheduler: false });
    await startInstance(registry, { scheduler: false });
    const data: TickData = { type: 'tick.pgboss', cron: '* * * * *', tz: 'Europe/Paris' };
    const sent = await Promise.all(Array.from({ length: 6 }, () => sender.boss.send(TICK_QUEUE, data)));
    const completedTicks = async () => {
      const { rows } = await fixture.pool.query<{ n: string }>(`SELECT count(*) AS n FROM pgboss.job WHERE name = $1 AND state = 'completed'`, [TICK_QUEUE]);
      return Number(rows[0]!.n);
    };
    await pollUntil('every tick handled', async () => (await completedTicks()) === sent.length);
    // A tick whose worker enqueued its job, then died before completing it, comes back from
    // expiry as the same pg-boss job: put one back in that state, and it finds its job.
    await reviveCompleted(fixture, { queue: TICK_QUEUE, id: sent[0]! });
    await pollUntil('the retried tick handled', async () => {
      const { rows } = await fixture.pool.query<{ state: string; retry_count: number }>(`SELECT state, retry_count FROM pgboss.job WHERE name = $1 AND id = $2`, [TICK_QUEUE, sent[0]]);
      return rows[0]?.state === 'completed' && rows[0].retry_count >= 1;
    });

    const ticks = await tickJobs();
    const expected = new Set(ticks.map((tick) => tickJobId('tick.pgboss', tickTime(data, tick.created))));
    // Six ticks sent within a second or so: one occurrence, two if they straddled a minute.
    expect(expected.size).toBeLessThanOrEqual(2);
    const rows = await jobsOf('tick.pgboss');
    expect(rows.map((row) => row.id).sort()).toEqual([...expected].sort());
    for (const row of rows) expect(row).toMatchObject({ engine: 'PGBOSS', pgboss: true });
    expect(instances.map((instance) => instance.manager.fallbackCount)).toEqual([0, 0]);
  });

  it('lists each schedule with its next tick; a type no longer recurring is unscheduled, one another registry owns is kept', async () => {
    const registry = recurring();
    const first = await startInstance(registry, { scheduler: false });
    // A schedule written by a registry of another version, for a type this one does not know.
    await first.boss.schedule(TICK_QUEUE, '0 3 * * *', { type: 'tick.elsewhere', cron: '0 3 * * *', tz: 'UTC' }, { key: 'tick.elsewhere' });
    const now = new Date('2030-01-01T10:00:30Z');
    expect(await listSchedules({ db: fixture.pool, registry, now })).toEqual([
      { type: 'tick.elsewhere', cron: '0 3 * * *', tz: 'UTC', nextTickAt: '2030-01-02T03:00:00.000Z', scheduled: true, registered: false, outdated: false, lastTickJobId: null },
      { type: 'tick.legacy', cron: '* * * * *', tz: 'UTC', nextTickAt: '2030-01-01T10:01:00.000Z', scheduled: true, registered: true, outdated: false, lastTickJobId: null },
      { type: 'tick.pgboss', cron: '* * * * *', tz: 'Europe/Paris', nextTickAt: '2030-01-01T10:01:00.000Z', scheduled: true, registered: true, outdated: false, lastTickJobId: null },
    ]);

    // The next version: tick.legacy runs daily at 06:00 Paris time, tick.pgboss is no longer recurring.
    const next = createRegistry([
      every('tick.legacy', { cron: '0 6 * * *', tz: 'Europe/Paris' }),
      defineJob({ name: 'tick.pgboss', schema: z.object({}), async handler() {
        return null;
      } }),
    ]);
    expect((await listSchedules({ db: fixture.pool, registry: next, now })).find((info) => info.type === 'tick.legacy')).toMatchObject({ outdated: true, nextTickAt: '2030-01-02T05:00:00.000Z' });
    await startInstance(next, { scheduler: false });
    const listed = await listSchedules({ db: fixture.pool, registry: next, now });
    expect(listed.map(({ type, cron, tz, scheduled, registered, outdated }) => ({ type, cron, tz, scheduled, registered, outdated }))).toEqual([
      { type: 'tick.elsewhere', cron: '0 3 * * *', tz: 'UTC', scheduled: true, registered: false, outdated: false },
      { type: 'tick.legacy', cron: '0 6 * * *', tz: 'Europe/Paris', scheduled: true, registered: true, outdated: false },
    ]);
  });
});

describe('schedule validation', () => {
  const define = (schedule: { cron: string; tz?: string }) => () => every('bad.schedule', schedule);

  it.each([
    [{ cron: 'bogus' }, /^bad\.schedule: schedule\.cron 'bogus' is not a valid cron expression \(minute hour day-of-month month day-of-week\): /],
    [{ cron: '61 * * * *' }, /^bad\.schedule: schedule\.cron '61 \* \* \* \*' is not a valid cron expression .*61/],
    [{ cron: '' }, /^bad\.schedule: schedule\.cron must be a cron expression such as '\*\/5 \* \* \* \*', got ""$/],
    [{ cron: '*/5 * * * * *' }, /^bad\.schedule: schedule\.cron '\*\/5 \* \* \* \* \*' fires more than once a minute; pg-boss's scheduler fires a schedule at most once a minute/],
    [{ cron: '* * * * *', tz: 'Mars/Olympus_Mons' }, /^bad\.schedule: schedule\.tz must be an IANA time zone such as 'UTC' or 'Europe\/Paris', got "Mars\/Olympus_Mons"$/],
  ])('refuses %j with one line that says the rule', (schedule, message) => {
    expect(define(schedule)).toThrow(message);
    expect(define(schedule)).not.toThrow(/\n/);
  });

  it('takes a five-field cron, or six with one second, and defaults the zone to UTC and the payload to {}', () => {
    expect(every('ok.five', { cron: '*/5 * * * *' }).schedule).toEqual({ cron: '*/5 * * * *', tz: 'UTC', payload: { source: 'schedule' } });
    expect(defineJob({ name: 'ok.six', schema: z.object({}), schedule: { cron: '30 0 9 * * 1-5', tz: 'America/New_York' }, async handler() {
      return null;
    } }).schedule).toEqual({ cron: '30 0 9 * * 1-5', tz: 'America/New_York', payload: {} });
  });

  it('refuses at registry load a schedule payload the type\'s schema refuses', async () => {
    const registry = createRegistry([every('bad.payload', { cron: '* * * * *' }, { payload: { source: 42 } })], '/teams/registry.mjs');
    await expect(assertSchedulePayloads(registry)).rejects.toThrow(/^job registry \/teams\/registry\.mjs: bad\.payload: schedule\.payload is not a valid payload: /);
  });
});
