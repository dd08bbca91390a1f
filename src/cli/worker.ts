import { Option, type Command } from 'commander';
import type { PgBoss } from 'pg-boss';
import type { Config } from '../support/env.js';
import { startHeartbeat } from '../state/heartbeat.js';
import type { JobRegistry } from '../jobs/registry.js';
import type { Logger } from '../support/log.js';
import { mirrorSettledJobs } from '../reconcile/fix.js';
import { startSchedules } from '../runtime/schedules.js';
import { isConnectionError } from '../db/outage.js';
import { FlagCache } from '../state/flags.js';
import { RolloutManager } from '../rollout/manager.js';
import type { LegacyTable } from '../table/table.js';
import { createPool, type Pool } from '../db/pool.js';
import { UsageError } from '../support/errors.js';
import { loadRegistry } from '../jobs/registry.js';
import { explainFailure, openBoss, readyTable } from './services.js';
import { LegacyRunner } from '../legacy/runner.js';
import { BossWorker } from '../pgboss/worker.js';
import { withContext } from './context.js';
import { configuredWebhook, startConfiguredNotifier } from './notify.js';
import { commaList, integerIn } from './parse.js';
import { printJson } from './output.js';
import { summaryInterval, withWorkerSummary, workerActivity } from './worker-summary.js';

/** A worker started while Postgres restarts waits this long for it (running workers reconnect for as long as it takes). */
const WORKER_DATABASE_WAIT_SECONDS = 30;

interface WorkerOptions {
  engine: 'legacy' | 'pgboss';
  concurrency?: number;
  pollMs?: number;
  types?: string[];
  registry?: string;
  shutdownTimeout: number;
  superviseInterval: number;
}

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
  databaseUrl: string;
  config: Config;
}): Promise<() => Promise<void>> {
  const { boss, pool, registry, table, log } = options;
  if (!registry.names().some((type) => registry.require(type).schedule)) return async () => undefined;
  const flags = new FlagCache({ pool, databaseUrl: options.databaseUrl, log, ttlMs: options.config.flagTtlMs });
  await flags.listen();
  const manager = new RolloutManager({ pool, boss, registry, table, flags, log, env: options.config.envOverride });
  const stop = await startSchedules({ boss, manager, registry, pool, table, log });
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

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run jobs on one engine until SIGTERM/SIGINT, then stop gracefully')
    .addOption(new Option('--engine <engine>', 'which engine to run').choices(['legacy', 'pgboss']).makeOptionMandatory())
    .option('--concurrency <n>', 'jobs at once (1-20, default 4)', integerIn(1, 20))
    .option('--poll-ms <ms>', 'legacy poll interval (default 1000)', integerIn(10, 60_000))
    .option('--types <a,b>', 'only these job types', commaList)
    .option('--registry <module>', 'job registry module (default: the demo jobs)')
    .option('--shutdown-timeout <s>', 'seconds to let running jobs finish on shutdown', integerIn(0, 3600), 30)
    .option('--supervise-interval <s>', 'pg-boss: how often to expire and retry jobs of dead workers', integerIn(1, 3600), 30)
    .action(async (options: WorkerOptions, command: Command) => {
      // Options of the other engine would be ignored; an operator who typed one expects it to count.
      if (options.engine === 'pgboss' && options.pollMs !== undefined) {
        throw new UsageError('--poll-ms is the legacy runner\'s poll interval; pg-boss workers are woken by LISTEN/NOTIFY: drop it, or use --engine legacy');
      }
      if (options.engine === 'legacy' && command.getOptionValueSource('superviseInterval') === 'cli') {
        throw new UsageError('--supervise-interval is for pg-boss workers (the legacy runner recovers stale rows by heartbeat): drop it, or use --engine pgboss');
      }
      // Read before anything starts: a bad value is a usage error, not a worker that half-started.
      const summaryMs = summaryInterval();
      await withContext(command, async ({ db, log, json, signal, project, config }) => {
        const registry = await loadRegistry(options.registry ?? project.registry);
        for (const type of options.types ?? []) registry.require(type);
        const webhook = configuredWebhook(project);
        const what = `worker --engine ${options.engine}`;
        // A worker that cannot work says why once and exits, rather than logging a failure per poll.
        const ready = async (pool: Pool) => {
          try {
            return await readyTable(pool, project);
          } catch (error) {
            throw await explainFailure(error, { pool, url: db.url, command: what });
          }
        };
        if (options.engine === 'pgboss') {
          const pool = createPool(db.url, { max: (options.concurrency ?? 4) + 2, applicationName: 'cutover-pgboss-worker' });
          try {
            const table = await ready(pool);
            const boss = await openBoss(pool, { databaseUrl: db.url, log, role: 'worker', superviseIntervalSeconds: options.superviseInterval, command: what });
            const worker = new BossWorker({ boss, pool, registry, table, log, ...(options.concurrency ? { concurrency: options.concurrency } : {}), ...(options.types ? { types: options.types } : {}) });
            try {
              await worker.start();
            } catch (error) {
              await boss.stop({ graceful: false, close: true }).catch(() => undefined);
              throw await explainFailure(error, { pool, url: db.url, command: what });
            }
            const stopBeating = await startHeartbeat(pool, { workerId: worker.workerId, engine: 'PGBOSS', types: options.types ?? registry.names() }, { log });
            const stopSchedules = await startRecurring({ boss, pool, registry, table, log, databaseUrl: db.url, config });
            const stopMirroring = mirrorSettledOnTimer({ pool, registry, table, log, workerId: worker.workerId, types: registry.names(), intervalSeconds: options.superviseInterval });
            // Only with a webhook configured; on a pool of its own, so a receiver that is down never holds the worker's connections.
            const notifier = startConfiguredNotifier(webhook, { url: db.url, log });
            const stats = await withWorkerSummary(summaryMs, () => workerActivity(pool, table, worker.workerId, 'PGBOSS'), log, async () => {
              await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
              return worker.stop(options.shutdownTimeout * 1000);
            }).finally(async () => {
              await stopSchedules();
              await stopMirroring();
              await notifier?.stop();
              await stopBeating();
            });
            if (json) printJson({ engine: options.engine, workerId: worker.workerId, ...stats });
          } finally {
            await pool.end();
          }
          return;
        }
        const pool = createPool(db.url, { max: 4, applicationName: 'cutover-legacy-runner' });
        try {
          const table = await ready(pool);
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
          const stats = await withWorkerSummary(summaryMs, () => workerActivity(pool, table, runner.workerId, 'LEGACY'), log, () => runner.run(signal)).finally(async () => {
            await notifier?.stop();
            await stopBeating();
          });
          if (json) printJson({ engine: options.engine, workerId: runner.workerId, ...stats });
        } finally {
          await pool.end();
        }
      }, { waitForDatabaseSeconds: WORKER_DATABASE_WAIT_SECONDS });
    });
}
