import { CronExpressionParser } from 'cron-parser';
import type { PgBoss } from 'pg-boss';
import { v5 as uuidv5 } from 'uuid';
import type { Pool, Queryable } from '../db/pool.js';
import { clientTx } from '../db/sql.js';
import { withTransaction } from '../db/transaction.js';
import { UsageError } from '../support/errors.js';
import type { JobSchedule } from '../jobs/define.js';
import { assertSchedulePayloads, type JobRegistry } from '../jobs/registry.js';
import type { Logger } from '../support/log.js';
import { schedulesOf, tickEnqueued } from '../pgboss-schema/reads.js';
import type { BossJob } from '../pgboss/settle.js';
import type { EnqueueResult, RolloutManager } from '../rollout/manager.js';
import { pgbossIdFor } from '../table/ids.js';
import type { LegacyTable } from '../table/table.js';
import { tableOf } from '../table/context.js';
import { isUndefinedTable } from '../support/pg-errors.js';

// Recurring jobs. pg-boss's scheduler is the clock: each recurring type has
// one pg-boss schedule on the tick queue (key = the type), and pg-boss's cron pass, claimed by
// one instance at a time across every process that runs it, files one tick per occurrence. A
// tick is then an ordinary pg-boss job whose handler enqueues the type's job through the
// RolloutManager, so the job is routed, tracked and reconciled like any other and follows the
// ramp. The job's id is derived from the type and the occurrence the tick stands for, and it is
// written only if no job has that id yet, so a retried or duplicated tick enqueues nothing twice.
//
// This lives in ops because the tick handler joins pg-boss (a queue worker) to rollout (the
// RolloutManager): those two are peers on the floor below and may not import each other.

/** The pg-boss queue of ticks. */
export const TICK_QUEUE = 'cutover.tick';

/** Namespace of tick job ids, fixed forever: the same type and occurrence give the same id everywhere. */
export const TICK_ID_NAMESPACE = 'a8d5c3f1-6b2e-5c47-9e18-3f0a7b6d2c91';

/** What a schedule row gives each of its ticks: enough to say which occurrence it stands for. */
export interface TickData {
  type: string;
  cron: string;
  tz: string;
}

/**
 * Tick queue policy: a tick that fails (database down, a worker whose registry lacks the type)
 * is retried; the id derived from its occurrence makes a retry harmless. A minute's expiry is
 * ample for one enqueue.
 */
const TICK_QUEUE_OPTIONS = { retryLimit: 10, retryDelay: 5, retryBackoff: true, expireInSeconds: 60, notify: true } as const;

/** The id of the job a type's tick at `tickAt` enqueues. */
export function tickJobId(type: string, tickAt: Date): string {
  return uuidv5(`${type}@${tickAt.toISOString()}`, TICK_ID_NAMESPACE);
}

/**
 * The occurrence a tick stands for: the latest of its schedule at or before the tick job was
 * created. pg-boss's tick job carries the schedule's data and nothing of the occurrence, but it
 * is created after its occurrence (by a cron pass within a minute of it, then forwarded within
 * the send-it poll), and a schedule fires at most once a minute (defineJob refuses more), so the
 * latest occurrence is the one: every duplicate of the tick maps to it as well. A tick delayed
 * past its schedule's next occurrence counts as that next one, whose own tick then finds its
 * job done: an occurrence is skipped, as pg-boss's own `missed: 'skip'` does, but none runs
 * twice. That takes a scheduler stalled for longer than a period, or a schedule created in a
 * minute's last seconds (pg-boss then fires that minute's occurrence, from before the schedule
 * existed, into the next minute).
 */
export function tickTime(data: Pick<TickData, 'cron' | 'tz'>, createdOn: Date): Date {
  // prev() answers strictly before its reference: one millisecond on keeps createdOn itself in.
  const interval = CronExpressionParser.parse(data.cron, { tz: data.tz, strict: false, currentDate: new Date(createdOn.getTime() + 1) });
  return interval.prev().toDate();
}

function isTickData(data: unknown): data is TickData {
  const tick = data as Partial<TickData> | null;
  return typeof tick === 'object' && tick !== null && typeof tick.type === 'string' && typeof tick.cron === 'string' && typeof tick.tz === 'string';
}

export interface SchedulesOptions {
  /**
   * pg-boss's scheduler runs only in instances started with `schedule: true`: at least one
   * process must have one, or no tick is ever filed. Any number may; they share one cron pass.
   */
  boss: PgBoss;
  manager: RolloutManager;
  registry: JobRegistry;
  /** For the transaction that checks a tick's job is new and enqueues it. */
  pool: Pool;
  log: Logger;
  /** The legacy table the tracking rows go to (the manager's). @defaultValue cutover's generic table */
  table?: LegacyTable;
  /** Backstop poll of the tick queue; NOTIFY wakes the worker for new ticks. @defaultValue 2 */
  pollingIntervalSeconds?: number;
}

function recurringTypes(registry: JobRegistry): { type: string; schedule: JobSchedule }[] {
  return registry.names().flatMap((type) => {
    const schedule = registry.require(type).schedule;
    return schedule ? [{ type, schedule }] : [];
  });
}

/**
 * A tick's job id is chosen by cutover: the id column must take a UUID. Serial and bigint ids
 * come from the table's sequence and cannot be derived from an occurrence.
 */
function assertTickIds(table: LegacyTable, types: readonly string[]): void {
  if (/^(uuid|text|character varying.*|varchar.*)$/.test(table.idType)) return;
  throw new UsageError(
    `recurring job types (${types.join(', ')}) need an id column that takes a UUID, as each tick's job id is derived from its occurrence; ${table.label}.${table.names.id} is ${table.idType}`,
  );
}

/**
 * Puts every recurring type of the registry on pg-boss's scheduler and works the tick queue:
 * call it in every pg-boss worker process. Idempotent: each call upserts the schedules (a
 * changed cron or zone takes effect), and removes the schedule of a type this registry knows
 * that is no longer recurring; schedules of types it does not know are left to the registry
 * that does (workers of another version). Returns a function that stops working ticks; the
 * schedules stay, as the other workers keep serving them.
 */
export async function startSchedules(options: SchedulesOptions): Promise<() => Promise<void>> {
  const { boss, registry, log } = options;
  const table = tableOf(options);
  const recurring = recurringTypes(registry);
  if (recurring.length) {
    assertTickIds(table, recurring.map(({ type }) => type));
    // loadRegistry has checked them; a registry built in memory has not.
    await assertSchedulePayloads(registry);
  }
  if (!(await boss.getQueue(TICK_QUEUE))) {
    try {
      await boss.createQueue(TICK_QUEUE, TICK_QUEUE_OPTIONS);
    } catch (error) {
      // Two workers starting together may race to create it; the loser finds it there.
      if (!(await boss.getQueue(TICK_QUEUE))) throw error;
    }
  }
  for (const { type, schedule } of recurring) {
    const data: TickData = { type, cron: schedule.cron, tz: schedule.tz };
    await boss.schedule(TICK_QUEUE, schedule.cron, data, { tz: schedule.tz, key: type });
  }
  for (const row of await boss.getSchedules(TICK_QUEUE)) {
    const definition = registry.get(row.key);
    if (definition && !definition.schedule) {
      await boss.unschedule(TICK_QUEUE, row.key);
      log.info({ type: row.key }, 'removed the schedule of a job type that is no longer recurring');
    }
  }

  const polling = options.pollingIntervalSeconds ?? 2;
  await boss.work(TICK_QUEUE, { batchSize: 10, includeMetadata: true, pollingIntervalSeconds: polling, notifyPollingIntervalSeconds: polling }, async (ticks: BossJob[]) => {
    // One at a time: ticks are few, and a failure then names its tick. Throwing fails the
    // batch for pg-boss to retry; the ticks already handled find their jobs and do nothing.
    for (const tick of ticks) await handleTick(options, table, tick);
  });
  if (recurring.length) log.info({ schedules: recurring.map(({ type, schedule }) => ({ type, cron: schedule.cron, tz: schedule.tz })) }, 'recurring jobs scheduled');
  return () => boss.offWork(TICK_QUEUE);
}

/** One tick: its occurrence's job, enqueued through the RolloutManager unless it already exists. */
async function handleTick(options: SchedulesOptions, table: LegacyTable, tick: BossJob): Promise<EnqueueResult | undefined> {
  const { registry, manager, pool, log } = options;
  if (!isTickData(tick.data)) {
    log.error({ tickId: tick.id, data: tick.data }, 'dropped a tick that names no job type and schedule');
    return undefined;
  }
  const { type } = tick.data;
  const definition = registry.get(type);
  // Another worker (of the version that has the type) may take the retry.
  if (!definition) throw new UsageError(`a tick for job type '${type}', which this worker's registry does not define`);
  const { schedule } = definition;
  if (!schedule) {
    log.warn({ type }, 'dropped a tick of a job type that is no longer recurring');
    return undefined;
  }
  const tickAt = tickTime(tick.data, tick.createdOn);
  const id = tickJobId(type, tickAt);
  const enqueued = await withTransaction(pool, async (client) => {
    // Duplicates of a tick can run at once on several workers: the lock makes the second wait
    // for the first to commit, and then find its job.
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`${TICK_QUEUE}:${id}`]);
    // The tracking row, or, for a type finalized with tracking off, the pg-boss job alone.
    const { rows } = await client.query<{ exists: boolean }>(tickEnqueued(table), [id, type, pgbossIdFor(id)]);
    if (rows[0]?.exists) return undefined;
    return manager.enqueue(type, schedule.payload, { id, key: id, tx: clientTx(client) });
  });
  if (enqueued) log.info({ type, tickAt: tickAt.toISOString(), jobId: enqueued.id, engine: enqueued.engine, reason: enqueued.reason }, 'enqueued a recurring job');
  else log.debug({ type, tickAt: tickAt.toISOString(), jobId: id }, 'tick already enqueued; nothing to do');
  return enqueued;
}

export interface ScheduleInfo {
  type: string;
  cron: string;
  tz: string;
  /** When the next occurrence is due, ISO 8601; pg-boss files its tick within its cron pass interval after. */
  nextTickAt: string | null;
  /** pg-boss holds a schedule for the type: some worker with startSchedules has run since it became recurring. */
  scheduled: boolean;
  /** The type is recurring in this registry; false for a schedule another registry version wrote. */
  registered: boolean;
  /** pg-boss's schedule differs from the definition's (cron or zone): no worker with this definition has started since. */
  outdated: boolean;
  /** The pg-boss id of the last tick filed, when pg-boss recorded one. */
  lastTickJobId: string | null;
}

/** The next occurrence after `now`, or null if the expression cannot be read (a schedule written by hand). */
function nextTick(cron: string, tz: string, now: Date): string | null {
  try {
    return CronExpressionParser.parse(cron, { tz, strict: false, currentDate: now }).next().toDate().toISOString();
  } catch {
    return null;
  }
}

/**
 * Every schedule, for `cutover status`: the registry's recurring types and the tick schedules
 * pg-boss holds, each with its next tick. Reads pg-boss's table directly, so a read-only
 * command never starts (or migrates) pg-boss; with pg-boss not installed, none is scheduled.
 */
export async function listSchedules(options: { db: Queryable; registry: JobRegistry; now?: Date }): Promise<ScheduleInfo[]> {
  const { db, registry } = options;
  const now = options.now ?? new Date();
  const { rows } = await db.query<{ key: string; cron: string; timezone: string; lastJobId: string | null }>(schedulesOf, [TICK_QUEUE]).catch((error: unknown) => {
    if (isUndefinedTable(error)) return { rows: [] };
    throw error;
  });
  const stored = new Map(rows.map((row) => [row.key, row]));
  const infos: ScheduleInfo[] = recurringTypes(registry).map(({ type, schedule }) => {
    const row = stored.get(type);
    return {
      type,
      cron: schedule.cron,
      tz: schedule.tz,
      nextTickAt: nextTick(schedule.cron, schedule.tz, now),
      scheduled: row !== undefined,
      registered: true,
      outdated: row !== undefined && (row.cron !== schedule.cron || row.timezone !== schedule.tz),
      lastTickJobId: row?.lastJobId ?? null,
    };
  });
  for (const [type, row] of stored) {
    if (infos.some((info) => info.type === type)) continue;
    infos.push({ type, cron: row.cron, tz: row.timezone, nextTickAt: nextTick(row.cron, row.timezone, now), scheduled: true, registered: false, outdated: false, lastTickJobId: row.lastJobId ?? null });
  }
  return infos.sort((a, b) => a.type.localeCompare(b.type));
}
