import type { PgBoss } from 'pg-boss';
import type { Pool } from '../db/pool.js';
import { disablePreparedStatements, prepared } from '../db/prepared.js';
import { withTransaction } from '../db/transaction.js';
import { clientTx, isPrismaTransaction, prismaTx, type PrismaTransaction, type Tx } from '../db/sql.js';
import { AdapterError, JobIdTakenError } from '../support/errors.js';
import { pgbossIdFor } from '../table/ids.js';
import { assertIdType, GENERIC_TABLE, newRowIds, type LegacyTable } from '../table/table.js';
import { maxAttempts, type Engine, type JobName, type JobTypes, type UntypedJobs } from '../jobs/define.js';
import type { JobRegistry } from '../jobs/registry.js';
import type { Logger } from '../support/log.js';
import { decideRoute, type EnvOverride, type Route, type RouteReason } from './decide.js';
import type { FlagCache } from '../state/flags.js';
import { pgbossPriority } from '../table/priority.js';
import { insertJobRows, type NewJobRow } from '../table/tracking.js';
import { insertWithRows, NotComposable } from './dual-write.js';
import { isConnectionStateError, isPermissionDenied, isPreparedStatementError } from '../support/pg-errors.js';

export interface EnqueueOptions {
  /** Sticky routing key: the same key goes to the same engine while the flag is unchanged. @defaultValue the job id */
  key?: string;
  priority?: number;
  /** The row's id (a UUID on a uuid table); generated when absent. */
  id?: string;
  /** Join the caller's transaction (a Prisma interactive transaction, or a pg client inside BEGIN). */
  tx?: PrismaTransaction | Tx;
}

export interface EnqueueResult {
  /** The legacy row's id. */
  id: string;
  /** The job's id in pg-boss, when routed there: the row id, or its uuidv5 when that is not a UUID. */
  pgbossJobId?: string;
  engine: Engine;
  bucket: number;
  reason: RouteReason;
}

/** `Payload`: what the job type's schema takes, when the registry is typed. */
export interface EnqueueItem<Payload = unknown> {
  payload: Payload;
  key?: string;
  priority?: number;
  id?: string;
}

export interface RolloutManagerOptions<Types extends JobTypes = UntypedJobs> {
  pool: Pool;
  boss: PgBoss;
  /** A typed registry (createRegistry over defineJob's definitions) types `enqueue`'s names and payloads. */
  registry: JobRegistry<Types>;
  flags: FlagCache;
  log: Logger;
  /** The legacy table the tracking rows go to. @defaultValue cutover's generic table */
  table?: LegacyTable;
  /** PGBOSS_ROLLOUT_PERCENTAGE / USE_PGBOSS, for teams coming from the env-var approach. */
  env?: EnvOverride;
}

/**
 * Routes each new job to legacy or pg-boss and writes its `Job` row, plus for pg-boss the
 * pg-boss job with the same id, both or neither: in the caller's transaction when given one,
 * else as one statement (dual-write.ts). If pg-boss refuses the job and the flag's
 * fallback is on, the job is written to legacy instead (reason `fallback`), never to both.
 */
export class RolloutManager<Types extends JobTypes = UntypedJobs> {
  private fallbacks = 0;
  /** False once pg-boss built an insert this version of cutover cannot extend (see dual-write.ts). */
  private composable = true;

  constructor(private readonly options: RolloutManagerOptions<Types>) {}

  /** Jobs written to legacy because pg-boss refused them, since this manager started. */
  get fallbackCount(): number {
    return this.fallbacks;
  }

  async enqueue<Type extends JobName<Types>>(type: Type, payload: Types[Type]['input'], options: EnqueueOptions = {}): Promise<EnqueueResult> {
    const [result] = await this.write(type, [{ payload, ...options }], options.tx);
    return result!;
  }

  /** A batch in one round of statements: one insert of rows, one pg-boss insert. */
  async enqueueMany<Type extends JobName<Types>>(type: Type, items: readonly EnqueueItem<Types[Type]['input']>[], options: { tx?: PrismaTransaction | Tx } = {}): Promise<EnqueueResult[]> {
    return this.write(type, items, options.tx);
  }

  private async write(type: string, items: readonly EnqueueItem[], tx: PrismaTransaction | Tx | undefined): Promise<EnqueueResult[]> {
    if (!items.length) return [];
    const { registry, flags } = this.options;
    const table = this.options.table ?? GENERIC_TABLE;
    const definition = registry.require(type);
    const payloads = await Promise.all(items.map((item) => registry.validate(type, item.payload)));
    const { typeFlag, defaultFlag } = await flags.get(type);
    for (const item of items) if (item.id !== undefined) assertIdType(table, item.id);
    // Ids come first: the routing key defaults to the id. A serial id is drawn from its sequence.
    const fresh = await newRowIds(clientQuery(tx, this.options.pool), table, items.filter((item) => item.id === undefined).length);
    const planned = items.map((item, index) => {
      const id = item.id ?? fresh.shift()!;
      const route = decideRoute({ type, key: item.key ?? id, typeFlag, defaultFlag, env: this.options.env ?? {} });
      return { id, route, payload: payloads[index], priority: item.priority ?? 0 };
    });
    const attempts = maxAttempts(definition);
    const row = (job: (typeof planned)[number], engine: Engine, reason: RouteReason): NewJobRow => ({
      id: job.id,
      type,
      payload: job.payload,
      priority: job.priority,
      maxAttempts: attempts,
      engine,
      routeReason: reason,
      bucket: job.route.bucket,
    });

    const toBoss = planned.filter((job) => job.route.engine === 'PGBOSS');
    const own = (work: (t: Tx) => Promise<EnqueueResult[]>) => withTransaction(this.options.pool, (client) => work(clientTx(client)));
    const callerTx = tx && (isPrismaTransaction(tx) ? prismaTx(tx) : tx);
    if (!toBoss.length) {
      const legacy = async (t: Tx) => {
        await insertJobRows(t, table, planned.map((job) => row(job, 'LEGACY', job.route.reason)));
        return planned.map((job) => result(job.id, job.route));
      };
      // One statement: atomic on its own, no transaction to open.
      return legacy(callerTx ?? autocommit(this.options.pool));
    }

    // A finalized type with tracking off: pg-boss alone records its jobs (reconcile knows).
    const untracked = (job: (typeof planned)[number]) => job.route.reason === 'finalized' && job.route.flag?.finalized?.tracking === false;
    const routed = async (t: Tx, inTransaction = true): Promise<EnqueueResult[]> => {
      const tracked = planned.filter((job) => !untracked(job)).map((job) => ({ ...row(job, job.route.engine, job.route.reason), id: job.id }));
      const jobs = toBoss.map((job) => ({ id: pgbossIdFor(job.id), data: job.payload as object, priority: pgbossPriority(job.priority) }));
      await insertWithRows({ boss: this.options.boss, pool: this.options.pool, table, type, db: t.boss, inTransaction }, tracked, jobs);
      return planned.map((job) => result(job.id, job.route));
    };
    const fallback = async (t: Tx, error: unknown): Promise<EnqueueResult[]> => {
      // A legacy adapter that cannot write the row, or a producer without the grants pg-boss
      // needs, is not pg-boss refusing: falling back would hide the mistake for good.
      const misconfigured = error instanceof AdapterError || error instanceof JobIdTakenError || isPermissionDenied(error);
      // Nor is our own connection failing (a prepared statement a pooler lost, a connection
      // gone, a transaction aborted): pg-boss said nothing about the job, so it is thrown.
      if (misconfigured || isConnectionStateError(error) || !toBoss.every((job) => job.route.flag?.fallbackToLegacy ?? true)) throw error;
      this.fallbacks += toBoss.length;
      this.options.log.warn({ type, jobs: toBoss.length, err: error, fallbacks: this.fallbacks }, 'pg-boss refused jobs; written to legacy instead');
      await insertJobRows(t, table, planned.map((job) => (job.route.engine === 'PGBOSS' ? row(job, 'LEGACY', 'fallback') : row(job, 'LEGACY', job.route.reason))));
      return planned.map((job) => (job.route.engine === 'PGBOSS' ? { id: job.id, engine: 'LEGACY', bucket: job.route.bucket, reason: 'fallback' } : result(job.id, job.route)));
    };

    if (!callerTx) {
      // Rows and jobs as one statement need no transaction around them; a refusal then has
      // written nothing, and the fallback gets a transaction of its own. The common path pays
      // one round trip, no BEGIN, COMMIT or savepoint. A failed statement wrote nothing, so one
      // that met a transaction pooler's prepared-statement error is sent again, unnamed.
      const routedOnPool = async (): Promise<EnqueueResult[]> => {
        if (this.composable) {
          try {
            return await routed(autocommit(this.options.pool), false);
          } catch (error) {
            if (!(error instanceof NotComposable)) throw error;
            this.composable = false;
            this.options.log.warn({ type }, error.message);
          }
        }
        return await own(routed);
      };
      const attempt = async (): Promise<EnqueueResult[]> => {
        try {
          return await routedOnPool();
        } catch (error) {
          if (!isPreparedStatementError(error)) throw error;
          disablePreparedStatements();
          this.options.log.warn({ type }, 'a transaction pooler serves this database: statements run unnamed from now on');
          return await routedOnPool();
        }
      };
      try {
        return await attempt();
      } catch (error) {
        return own((t) => fallback(t, error));
      }
    }
    // In the caller's transaction a savepoint lets a refused pg-boss write fall back without undoing their work.
    await callerTx.query('SAVEPOINT cutover_enqueue');
    try {
      const results = await routed(callerTx);
      await callerTx.query('RELEASE SAVEPOINT cutover_enqueue');
      return results;
    } catch (error) {
      await callerTx.query('ROLLBACK TO SAVEPOINT cutover_enqueue');
      return fallback(callerTx, error);
    }
  }
}

/**
 * Statements on the pool, each its own transaction. The same few texts come back on every
 * enqueue (one per job type and shape of row), so each is prepared once per connection: the
 * composed insert costs more to plan than to run.
 */
function autocommit(pool: Pool): Tx {
  return {
    query: async <Row>(text: string, values: unknown[] = []) => (await pool.query(prepared(text, values))).rows as Row[],
    boss: { executeSql: (text: string, values: unknown[] = []) => pool.query(prepared(text, values)) },
  };
}

/** Queries on the caller's transaction when there is one, else on the pool. */
function clientQuery(tx: PrismaTransaction | Tx | undefined, pool: Pool): Pick<Tx, 'query'> {
  if (tx) return isPrismaTransaction(tx) ? prismaTx(tx) : tx;
  return { query: async <Row>(text: string, values?: unknown[]) => (await pool.query(text, values)).rows as Row[] };
}

function result(id: string, route: Route): EnqueueResult {
  return { id, ...(route.engine === 'PGBOSS' ? { pgbossJobId: pgbossIdFor(id) } : {}), engine: route.engine, bucket: route.bucket, reason: route.reason };
}
