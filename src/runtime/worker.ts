import type { PgBoss } from 'pg-boss';
import type { Config } from '../support/env.js';
import { startHeartbeat } from '../state/heartbeat.js';
import type { JobRegistry } from '../jobs/registry.js';
import type { Logger } from '../support/log.js';
import { mirrorSettledJobs } from '../reconcile/fix.js';
import { isConnectionError, retryThroughOutage } from '../db/outage.js';
import { FlagCache } from '../state/flags.js';
import { RolloutManager } from '../rollout/manager.js';
import type { LegacyTable } from '../table/table.js';
import { createPool, type Pool } from '../db/pool.js';
import { isTransactionPooler } from '../state/leases.js';
import { loadRegistry } from '../jobs/registry.js';
import { messageOf, UsageError } from '../support/errors.js';
import { LegacyRunner, type RunnerStats } from '../legacy/runner.js';
import { BossWorker, type BossWorkerStats } from '../pgboss/worker.js';
import type { NotifySettings } from '../notify/notify.js';
import type { RuntimeContext } from './context.js';
import { configuredWebhook, startConfiguredNotifier } from './notifier.js';
import { startSchedules } from './schedules.js';
import { databaseProbe, WorkerProbes } from './probes.js';
import { explainFailure, openBoss, readyTable } from './services.js';
import { summaryToStderr, withWorkerSummary, workerActivity } from './worker-summary.js';

/** A worker started while Postgres restarts waits this long for it (running workers reconnect for as long as it takes). */
export const WORKER_DATABASE_WAIT_SECONDS = 30;

export interface WorkerOptions {
  engine: 'legacy' | 'pgboss';
  /** Jobs at once. @defaultValue 4 */
  concurrency?: number;
  /** The legacy runner's poll interval. @defaultValue 1000 */
  pollMs?: number;
  /** Only these job types. @defaultValue every registered type */
  types?: string[];
  /**
   * The job registry: its module, or one already loaded (made with `createRegistry`), whose
   * in-process types then run as given. One without a module cannot run on the legacy engine or
   * run `isolation: 'process'` types, whose job processes load it by path.
   * @defaultValue the config's module, else the demo jobs
   */
  registry?: string | JobRegistry;
  /** Seconds running jobs may take to finish on shutdown. */
  shutdownTimeout: number;
  /** pg-boss: seconds between supervision runs (expiring and retrying jobs of dead workers), and between settled-state sweeps. */
  superviseInterval: number;
  /** The one-line summary's interval in ms (see `summaryInterval`); none when undefined. */
  summaryMs?: number | undefined;
  /** Where the summary's lines go. @defaultValue stderr */
  writeSummary?: (line: string) => void;
  /** Serve /livez, /readyz and /startupz on this port; none when undefined. */
  probePort?: number | undefined;
  /** The probes' address. @defaultValue DEFAULT_PROBE_HOST (every interface, for containers) */
  probeHost?: string | undefined;
}

/** What a worker did, by engine: its id and the engine's counts since it started. */
export type WorkerStats = ({ engine: 'pgboss' } & BossWorkerStats & { workerId: string }) | ({ engine: 'legacy' } & RunnerStats & { workerId: string });

/**
 * Recurring job types (`schedule` in their definition): every pg-boss worker works the tick
 * queue and enqueues each tick through a RolloutManager of its own, so a scheduled job is
 * routed, tracked and reconciled like any other. Nothing to do, and no flag cache, without one.
 */
async function startRecurring(options: {
  boss: PgBoss;
  pool: Pool;
  registry: JobRegistry;
  table: LegacyTable;
  log: Logger;
  /** Where the flag cache LISTENs; undefined: it re-reads flags every TTL only. */
  listenUrl: string | undefined;
  config: Config;
}): Promise<() => Promise<void>> {
  const { boss, pool, registry, table, log } = options;
  if (!registry.names().some((type) => registry.require(type).schedule)) return async () => undefined;
  const flags = new FlagCache({ pool, ...(options.listenUrl ? { databaseUrl: options.listenUrl } : {}), log, ttlMs: options.config.flagTtlMs });
  let stop: () => Promise<void>;
  try {
    await flags.listen();
    // Read once now: the worker is ready (/readyz) only with the flags its ticks are routed by in hand.
    await flags.get('*');
    const manager = new RolloutManager({ pool, boss, registry, table, flags, log, env: options.config.envOverride });
    stop = await startSchedules({ boss, manager, registry, pool, table, log });
  } catch (error) {
    // Tried again whole when the database went away: no LISTEN may be left behind.
    await flags.close().catch(() => undefined);
    throw error;
  }
  return async () => {
    await stop();
    await flags.close();
  };
}

/**
 * pg-boss settles some jobs without their worker: a job whose worker died on its last attempt
 * is expired and failed by supervision. Each pg-boss worker copies such final states to the
 * rows on its supervise interval, so they do not say RUNNING until an operator reconciles.
 */
function mirrorSettledOnTimer(options: {
  pool: Pool;
  registry: JobRegistry;
  table: LegacyTable;
  log: Logger;
  workerId: string;
  types: readonly string[];
  intervalSeconds: number;
}): () => Promise<void> {
  let running: Promise<void> | undefined;
  const sweep = async () => {
    try {
      const copied = await mirrorSettledJobs({ pool: options.pool, registry: options.registry, table: options.table, types: options.types, actor: `worker ${options.workerId}`, graceSeconds: 60 });
      if (copied) options.log.info({ rows: copied }, "copied pg-boss's final state to rows whose worker could not (expired on the last attempt, or failed by supervision)");
    } catch (error) {
      // An outage is logged once by pg-boss's own outage line; anything else is worth a warning, and the next sweep tries again.
      if (!isConnectionError(error)) options.log.warn({ err: error }, 'could not mirror jobs pg-boss settled on its own');
    }
  };
  const timer = setInterval(() => {
    running ??= sweep().finally(() => (running = undefined));
  }, options.intervalSeconds * 1000);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await running;
  };
}

/**
 * Where a worker LISTENs: DIRECT_URL when given, else the one URL if it is a session. Behind a
 * transaction pooler a LISTEN is made on whichever server connection served it and heard by
 * whoever uses that connection next, so without DIRECT_URL the worker does not listen: it polls
 * for new jobs and re-reads flags every TTL, and says so once.
 */
async function sessionForListen(context: RuntimeContext): Promise<string | undefined> {
  if (context.config.directUrl) return context.config.directUrl;
  // A failed probe (the database away at start) is taken for a session, as before poolers were looked for.
  if (!(await isTransactionPooler(context.db.url).catch(() => false))) return context.db.url;
  context.log.warn(
    { flagTtlMs: context.config.flagTtlMs },
    'DATABASE_URL is a transaction pooler and no DIRECT_URL is given: this worker does not LISTEN; it polls for new jobs and re-reads rollout flags on their TTL (give DIRECT_URL for low pickup latency)',
  );
  return undefined;
}

/**
 * One step of a worker's start, tried again while the database is away: a worker (re)started as
 * Postgres crashes or restarts waits the outage out, as its first connection does and as a
 * running worker does, instead of exiting half-started. Each step leaves nothing behind when it
 * fails, so trying it again starts nothing twice.
 */
function startStep<T>(context: RuntimeContext, what: string, step: string, run: () => Promise<T>): Promise<T> {
  return retryThroughOutage(run, {
    until: Date.now() + WORKER_DATABASE_WAIT_SECONDS * 1000,
    signal: context.signal,
    firstDelayMs: 250,
    onRetry: (error) =>
      context.log.warn({ error: messageOf(error), waitSeconds: WORKER_DATABASE_WAIT_SECONDS }, `${what}: the database went away while ${step}; trying again for up to ${WORKER_DATABASE_WAIT_SECONDS} s`),
  });
}

interface Assembly {
  context: RuntimeContext;
  options: WorkerOptions;
  registry: JobRegistry;
  webhook: NotifySettings | undefined;
  /** What failures name as refused: `worker --engine <engine>`. */
  what: string;
  /** The legacy table, once the schema is known to be there; a failure says why in one line. */
  ready: (pool: Pool) => Promise<LegacyTable>;
  /** With `--probe-port`: told when the engine and the flags are ready. */
  probes: WorkerProbes | undefined;
}

/** A pg-boss worker with its heartbeat, recurring jobs, settled-state sweep and notifier, until the signal. */
async function runBossWorker({ context, options, registry, webhook, what, ready, probes }: Assembly): Promise<WorkerStats> {
  const { db, log, signal, config } = context;
  // A job in process mostly waits on the network and holds no connection; the engine needs one per type's fetch, the group commit and failures: past 20, more connections buy nothing but memory in Postgres.
  const pool = createPool(db.url, { max: Math.min((options.concurrency ?? 4) + 2, 20), applicationName: 'cutover-pgboss-worker' });
  try {
    const table = await startStep(context, what, 'reading the table', () => ready(pool));
    const listenUrl = await sessionForListen(context);
    // pg-boss 12 takes one connection string for its queries and its LISTEN: the session when there is one.
    const bossOptions = { databaseUrl: listenUrl ?? db.url, listen: listenUrl !== undefined, log, role: 'worker', superviseIntervalSeconds: options.superviseInterval, command: what } as const;
    const boss = await startStep(context, what, 'starting pg-boss', () => openBoss(pool, bossOptions));
    const worker = new BossWorker({ boss, pool, registry, table, log, ...(options.concurrency ? { concurrency: options.concurrency } : {}), ...(options.types ? { types: options.types } : {}) });
    try {
      await startStep(context, what, 'creating queues and listening for jobs', () => worker.start());
    } catch (error) {
      await boss.stop({ graceful: false, close: true }).catch(() => undefined);
      throw await explainFailure(error, { pool, url: db.url, command: what });
    }
    const stopBeating = await startHeartbeat(pool, { workerId: worker.workerId, engine: 'PGBOSS', types: options.types ?? registry.names() }, { log });
    probes?.markEngineStarted();
    let stopSchedules: () => Promise<void>;
    try {
      stopSchedules = await startStep(context, what, 'loading recurring jobs and rollout flags', () => startRecurring({ boss, pool, registry, table, log, listenUrl, config }));
    } catch (error) {
      // The fetch loops run already: their jobs finish (or are given back) before the worker exits.
      await worker.stop(options.shutdownTimeout * 1000);
      await stopBeating();
      throw error;
    }
    probes?.markFlagsLoaded();
    const stopMirroring = mirrorSettledOnTimer({ pool, registry, table, log, workerId: worker.workerId, types: registry.names(), intervalSeconds: options.superviseInterval });
    // Only with a webhook configured; on a pool of its own, so a receiver that is down never holds the worker's connections.
    const notifier = startConfiguredNotifier(webhook, { url: db.url, log });
    const stats = await withWorkerSummary(options.summaryMs, () => workerActivity(pool, table, worker.workerId, 'PGBOSS'), log, async () => {
      await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
      return worker.stop(options.shutdownTimeout * 1000);
    }, options.writeSummary ?? summaryToStderr).finally(async () => {
      await stopSchedules();
      await stopMirroring();
      await notifier?.stop();
      await stopBeating();
    });
    return { engine: 'pgboss', workerId: worker.workerId, ...stats };
  } finally {
    await pool.end();
  }
}

/** The legacy runner with its heartbeat and notifier, until the signal. */
async function runLegacyWorker({ context, options, registry, webhook, what, ready, probes }: Assembly): Promise<WorkerStats> {
  const { db, log, signal } = context;
  const pool = createPool(db.url, { max: 4, applicationName: 'cutover-legacy-runner' });
  try {
    const table = await startStep(context, what, 'reading the table', () => ready(pool));
    const runner = new LegacyRunner({
      pool,
      databaseUrl: db.url,
      registry,
      table,
      log,
      shutdownTimeoutMs: options.shutdownTimeout * 1000,
      ...(options.concurrency ? { concurrency: options.concurrency } : {}),
      ...(options.pollMs ? { pollMs: options.pollMs } : {}),
      ...(options.types ? { types: options.types } : {}),
    });
    const stopBeating = await startHeartbeat(pool, { workerId: runner.workerId, engine: 'LEGACY', types: options.types ?? registry.names() }, { log });
    const notifier = startConfiguredNotifier(webhook, { url: db.url, log });
    // The runner polls from its first line on, and routes nothing, so it reads no flags.
    probes?.markEngineStarted();
    probes?.markFlagsLoaded();
    const stats = await withWorkerSummary(options.summaryMs, () => workerActivity(pool, table, runner.workerId, 'LEGACY'), log, () => runner.run(signal), options.writeSummary ?? summaryToStderr).finally(async () => {
      await notifier?.stop();
      await stopBeating();
    });
    return { engine: 'legacy', workerId: runner.workerId, ...stats };
  } finally {
    await pool.end();
  }
}

/** How to give a registry the module a job process loads it by; one line, as the refusals below end with it. */
const REGISTRY_MODULE_ADVICE =
  "create it with createRegistry(jobs, module), module being the absolute path of the file that exports the same definitions (fileURLToPath(import.meta.url) there), or name that file as `registry` in cutover.config";

/**
 * A registry given as a value runs in process; whatever runs in a job process of its own loads
 * the registry by module path instead, and one without a module would silently load the demo
 * jobs there. So refuse at start, in one line: the legacy engine (a process per job), and on
 * pg-boss the `isolation: 'process'` types this worker would run. Exported so createCutover's
 * worker() refuses before it starts anything.
 */
export function assertRegistryRunnable(registry: JobRegistry, options: Pick<WorkerOptions, 'engine' | 'types'>): void {
  if (registry.module !== undefined) return;
  if (options.engine === 'legacy') {
    throw new UsageError(`the legacy engine runs each job in a process that loads the job registry by its module, and this registry has none: ${REGISTRY_MODULE_ADVICE}`);
  }
  const types = options.types?.length ? options.types : registry.names();
  const isolated = types.filter((type) => registry.require(type).isolation === 'process');
  if (isolated.length) {
    throw new UsageError(
      `job type${isolated.length > 1 ? 's' : ''} ${isolated.join(', ')} ask${isolated.length > 1 ? '' : 's'} for isolation: 'process', whose job processes load the registry by its module, and this registry has none: ${REGISTRY_MODULE_ADVICE}`,
    );
  }
}

/**
 * One worker process on one engine, run until the context's signal and stopped gracefully:
 * the engine, its heartbeat, and (pg-boss) recurring jobs and the settled-state sweep, plus the
 * notifier when a webhook is configured. Returns the engine's final counts.
 */
export async function runWorker(context: RuntimeContext, options: WorkerOptions): Promise<WorkerStats> {
  const given = typeof options.registry === 'object' ? options.registry : undefined;
  const registry = given ?? (await loadRegistry(typeof options.registry === 'string' ? options.registry : context.project.registry));
  for (const type of options.types ?? []) registry.require(type);
  if (given) assertRegistryRunnable(given, options);
  const webhook = configuredWebhook(context.project);
  const what = `worker --engine ${options.engine}`;
  // A worker that cannot work says why once and exits, rather than logging a failure per poll.
  const ready = async (pool: Pool) => {
    try {
      return await readyTable(pool, context.project);
    } catch (error) {
      throw await explainFailure(error, { pool, url: context.db.url, command: what });
    }
  };
  const probes = options.probePort === undefined ? undefined : await startProbes(context, options.probePort, options);
  try {
    const assembly = { context, options, registry, webhook, what, ready, probes: probes?.probes };
    return await (options.engine === 'pgboss' ? runBossWorker(assembly) : runLegacyWorker(assembly));
  } finally {
    await probes?.stop();
  }
}

/**
 * The probes, listening before the engine starts (/livez answers, /startupz says starting) and
 * answering 503 on /readyz from the stop signal on, while running jobs finish; closed last.
 */
async function startProbes(context: RuntimeContext, port: number, options: WorkerOptions): Promise<{ probes: WorkerProbes; stop: () => Promise<void> }> {
  const database = databaseProbe(context.db.url);
  const probes = new WorkerProbes({
    port,
    ...(options.probeHost === undefined ? {} : { host: options.probeHost }),
    checkDatabase: database.check,
    engine: options.engine === 'pgboss' ? 'pg-boss' : 'the legacy runner',
    log: context.log,
  });
  const drain = () => probes.markDraining();
  try {
    await probes.listen();
  } catch (error) {
    await database.close();
    throw error;
  }
  if (context.signal.aborted) drain();
  else context.signal.addEventListener('abort', drain, { once: true });
  return {
    probes,
    stop: async () => {
      context.signal.removeEventListener('abort', drain);
      await probes.close();
      await database.close();
    },
  };
}
