import { resolve } from 'node:path';
import type { PgBoss } from 'pg-boss';
import { loadConfigFile, type ProjectConfig } from '../config/file.js';
import { createPool, type Pool } from '../db/pool.js';
import type { JobTypes, UntypedJobs } from '../jobs/define.js';
import { loadRegistry, type JobRegistry } from '../jobs/registry.js';
import { ensureQueues } from '../pgboss/queues.js';
import { RolloutManager } from '../rollout/manager.js';
import { FlagCache } from '../state/flags.js';
import { isTransactionPooler } from '../state/leases.js';
import { loadConfig } from '../support/env.js';
import { UsageError } from '../support/errors.js';
import { createLogger, type Logger } from '../support/log.js';
import type { CutoverConfig, LegacyAdapter } from '../table/adapter.js';
import type { LegacyTable } from '../table/table.js';
import type { RuntimeContext } from './context.js';
import { explainFailure, openBoss, readyTable } from './services.js';
import { assertRegistryRunnable, runWorker, type WorkerOptions, type WorkerStats } from './worker.js';

/** cutover.config's content given as a value, its legacy adapter's `toRow` typed by the registry's jobs. */
export type CutoverConfigOf<Types extends JobTypes = UntypedJobs> = Omit<CutoverConfig, 'legacy'> & { legacy?: LegacyAdapter<Types> };

export interface CreateCutoverOptions<Types extends JobTypes = UntypedJobs> {
  /** The database. @defaultValue DATABASE_URL, else the given pool's connection string */
  databaseUrl?: string;
  /** A session to the same database, for LISTEN when `databaseUrl` is a transaction pooler's. @defaultValue DIRECT_URL */
  directUrl?: string;
  /**
   * The cutover.config file, relative to `cwd`, as the CLI's `--config`. @defaultValue the
   * first of cutover.config.{ts,mjs,js} in `cwd`, else cutover's generic table and the demo jobs
   */
  configFile?: string;
  /** The config as a value instead of a file (its `registry` and `migrations` relative to `cwd`). */
  config?: CutoverConfigOf<NoInfer<Types>>;
  /**
   * The job registry. One made by `createRegistry([...definitions])` types `enqueue`, and
   * pg-boss workers started here run it in process as given; the legacy runner and
   * `isolation: 'process'` types need it to name its module (`createRegistry(jobs, module)`),
   * which their job processes load. @defaultValue the config's `registry` module, else the demo jobs
   */
  registry?: JobRegistry<Types>;
  /**
   * The pool enqueues and the flag cache use; `close()` leaves it open. Give its connections an
   * application_name starting with `cutover` where an adoption guard is installed.
   * @defaultValue a pool of its own, of `poolMax` connections
   */
  pool?: Pool;
  /** @defaultValue 10 */
  poolMax?: number;
  /** @defaultValue pino on stderr at CUTOVER_LOG_LEVEL */
  log?: Logger;
  /** Where cutover.config is looked for. @defaultValue process.cwd() */
  cwd?: string;
  /** The environment read for DATABASE_URL, DIRECT_URL, the rollout overrides and the flag TTL. @defaultValue process.env */
  env?: NodeJS.ProcessEnv;
}

/** A worker's settings: those of `cutover worker`, with its defaults. */
export type CutoverWorkerOptions = Omit<WorkerOptions, 'registry' | 'shutdownTimeout' | 'superviseInterval' | 'summaryMs' | 'writeSummary'> & {
  /** Seconds running jobs may take to finish on stop. @defaultValue 30 */
  shutdownTimeout?: number;
  /** pg-boss: seconds between supervision runs and settled-state sweeps. @defaultValue 30 */
  superviseInterval?: number;
};

export interface CutoverWorker {
  /** The worker's final counts once it stopped; rejects when it could not start or failed. */
  readonly done: Promise<WorkerStats>;
  /** Stops it gracefully (running jobs get `shutdownTimeout`) and returns its counts. */
  stop(): Promise<WorkerStats>;
}

export interface Cutover<Types extends JobTypes = UntypedJobs> {
  /** RolloutManager.enqueue: routed, tracked, in the caller's transaction with `{ tx }`. */
  enqueue: RolloutManager<Types>['enqueue'];
  enqueueMany: RolloutManager<Types>['enqueueMany'];
  manager: RolloutManager<Types>;
  registry: JobRegistry<Types>;
  pool: Pool;
  boss: PgBoss;
  flags: FlagCache;
  table: LegacyTable;
  /** The config file or value in use (the generic table and demo jobs when there is none). */
  project: ProjectConfig;
  /** Starts a worker in this process on one engine, as `cutover worker --engine` does, until stop() or close(). */
  worker(options: CutoverWorkerOptions): CutoverWorker;
  /** Stops its workers, then closes what this call opened (pg-boss, the flag listener, its own pool), never what it was given. */
  close(): Promise<void>;
}

/** The config value resolved as loadConfigFile resolves a file's, with `cwd` for its folder. */
function projectOf(config: CutoverConfigOf<JobTypes>, cwd: string): ProjectConfig {
  return {
    file: undefined,
    legacy: config.legacy as LegacyAdapter | undefined,
    registry: config.registry === undefined ? undefined : resolve(cwd, config.registry),
    migrationsDir: resolve(cwd, config.migrations ?? 'prisma/migrations'),
    notifications: config.notifications,
  };
}

function connectionStringOf(pool: Pool | undefined): string | undefined {
  // node-postgres keeps the pool's config on `options`; its types do not say so.
  const options = (pool as unknown as { options?: { connectionString?: unknown } } | undefined)?.options;
  return typeof options?.connectionString === 'string' ? options.connectionString : undefined;
}

/**
 * Everything a producer needs, in one call: the config file (or value), the job registry, a
 * pool, pg-boss with a queue per job type, the rollout flags and a RolloutManager, the legacy
 * table checked against the catalog. Typed by a registry made with `createRegistry`: `enqueue`
 * then refuses an unknown type name or a payload its schema would not take, at compile time.
 */
export async function createCutover<Types extends JobTypes = UntypedJobs>(options: CreateCutoverOptions<Types> = {}): Promise<Cutover<Types>> {
  const cwd = options.cwd ?? process.cwd();
  if (options.config && options.configFile !== undefined) throw new UsageError('createCutover takes config or configFile, not both');
  const databaseUrl = options.databaseUrl ?? connectionStringOf(options.pool);
  const config = loadConfig({ env: options.env ?? process.env, cwd, ...(databaseUrl ? { databaseUrl } : {}), ...(options.directUrl ? { directUrl: options.directUrl } : {}) });
  const url = config.databaseUrl;
  if (!url) throw new UsageError('createCutover needs a database: give databaseUrl (or a pool made with a connection string), or set DATABASE_URL');
  const log = options.log ?? createLogger({ level: config.logLevel });
  const project = options.config ? projectOf(options.config, cwd) : await loadConfigFile(options.configFile, cwd);
  // A registry from a module path is untyped: Types is then UntypedJobs, its default.
  const registry = options.registry ?? ((await loadRegistry(project.registry, cwd)) as JobRegistry<JobTypes> as JobRegistry<Types>);

  const pool = options.pool ?? createPool(url, { max: options.poolMax ?? 10, applicationName: 'cutover-producer' });
  let boss: PgBoss | undefined;
  let flags: FlagCache | undefined;
  const release = async () => {
    await flags?.close();
    await boss?.stop({ graceful: false, close: true }).catch(() => undefined);
    if (!options.pool) await pool.end();
  };
  let table: LegacyTable;
  let manager: RolloutManager<Types>;
  try {
    try {
      table = await readyTable(pool, project);
    } catch (error) {
      throw await explainFailure(error, { pool, url, command: 'createCutover' });
    }
    boss = await openBoss(pool, { databaseUrl: url, log, max: 4, command: 'createCutover' });
    await ensureQueues(boss, registry, log);
    // Flag changes reach this process at once over LISTEN, which a transaction pooler cannot carry: then the TTL alone.
    const listenUrl = config.directUrl ?? ((await isTransactionPooler(url).catch(() => false)) ? undefined : url);
    flags = new FlagCache({ pool, ...(listenUrl ? { databaseUrl: listenUrl } : {}), log, ttlMs: config.flagTtlMs });
    await flags.listen();
    manager = new RolloutManager<Types>({ pool, boss, registry, table, flags, log, env: config.envOverride });
  } catch (error) {
    await release();
    throw error;
  }

  const workers = new Set<{ controller: AbortController; done: Promise<WorkerStats> }>();
  // Workers run the registry in hand, so a given one's handlers run in process as given; the
  // demo jobs (no module) are left to the worker to load, as its job processes load them by default.
  const workerRegistry: JobRegistry | undefined = options.registry ?? (registry.module === undefined ? undefined : registry);
  let closing: Promise<void> | undefined;
  return {
    enqueue: (type, payload, enqueueOptions) => manager.enqueue(type, payload, enqueueOptions),
    enqueueMany: (type, items, enqueueOptions) => manager.enqueueMany(type, items, enqueueOptions),
    manager,
    registry,
    pool,
    boss,
    flags,
    table,
    project,
    worker(workerOptions) {
      if (closing) throw new UsageError('createCutover: worker() after close()');
      // Refused here, before anything starts: the legacy engine or process-isolated types over a registry without a module.
      if (workerRegistry) assertRegistryRunnable(workerRegistry, workerOptions);
      const controller = new AbortController();
      const context: RuntimeContext = { config, project, log, db: { url, embedded: false, close: async () => undefined }, signal: controller.signal, command: 'worker' };
      const done = runWorker(context, {
        shutdownTimeout: 30,
        superviseInterval: 30,
        ...workerOptions,
        ...(workerRegistry ? { registry: workerRegistry } : {}),
      });
      const entry = { controller, done };
      workers.add(entry);
      // Handled here so a worker failing with nobody awaiting `done` is logged, not an unhandled rejection.
      done.catch((error: unknown) => log.error({ err: error, engine: workerOptions.engine }, 'cutover worker stopped on an error')).finally(() => workers.delete(entry));
      return {
        done,
        stop() {
          controller.abort();
          return done;
        },
      };
    },
    close() {
      closing ??= (async () => {
        const running = [...workers];
        for (const { controller } of running) controller.abort();
        await Promise.allSettled(running.map(({ done }) => done));
        await release();
      })();
      return closing;
    },
  };
}
