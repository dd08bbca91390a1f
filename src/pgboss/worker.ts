import type { JobWithMetadata, PgBoss } from 'pg-boss';
import type { Pool, PoolClient } from '../db/pool.js';
import { withTransaction } from '../db/transaction.js';
import { classifyFailure, NonRetryableError, type JobFailure } from '../jobs/errors.js';
import { retryDelaySeconds, type JobDefinition } from '../jobs/define.js';
import type { JobRegistry } from '../jobs/registry.js';
import type { Logger } from '../log.js';
import { defaultWorkerId } from '../table/worker-id.js';
import type { LegacyRow } from '../table/adapter.js';
import { GENERIC_TABLE, placeResult, type LegacyTable } from '../table/table.js';
import { clientDb, PGBOSS_SCHEMA } from './boss.js';
import { markCompleted, markFailed, markStarted } from './mirror.js';
import { ensureQueues } from './queues.js';
import { messageOf } from '../errors.js';

export interface BossWorkerOptions {
  boss: PgBoss;
  pool: Pool;
  registry: JobRegistry;
  log: Logger;
  /** The legacy table the mirror rows live in. @defaultValue cutover's generic table */
  table?: LegacyTable;
  /** Jobs in flight per job type in this process. @defaultValue 4 */
  concurrency?: number;
  types?: readonly string[];
  workerId?: string;
  /**
   * Backstop poll while LISTEN/NOTIFY wakes the worker for new jobs; it also bounds how late a
   * delayed retry starts. @defaultValue 1
   */
  pollingIntervalSeconds?: number;
}

export interface BossWorkerStats {
  completed: number;
  failed: number;
  retried: number;
}

type BossJob = JobWithMetadata<unknown>;

/** A handler's outcome; `columns` is where the adapter puts a result on the row. */
type Outcome = { ok: true; result: unknown; columns?: LegacyRow } | { ok: false; failure: JobFailure };

/**
 * Runs registry handlers for pg-boss jobs, in process. The mirror row and the pg-boss state
 * change commit in one transaction per job, so `Job` never says COMPLETED for a job pg-boss
 * will run again, nor the reverse: a crash before the commit leaves the job active in pg-boss,
 * which retries it after expiry, and the mirror follows on that run.
 */
export class BossWorker {
  readonly workerId: string;
  private readonly stats: BossWorkerStats = { completed: 0, failed: 0, retried: 0 };
  private readonly types: readonly string[];
  private readonly log: Logger;
  private readonly table: LegacyTable;

  constructor(private readonly options: BossWorkerOptions) {
    this.table = options.table ?? GENERIC_TABLE;
    this.workerId = options.workerId ?? defaultWorkerId();
    this.types = options.types?.length ? options.types : options.registry.names();
    for (const type of this.types) options.registry.require(type);
    this.log = options.log.child({ engine: 'pgboss', workerId: this.workerId });
  }

  async start(): Promise<void> {
    const { boss, registry } = this.options;
    await ensureQueues(boss, registry, this.log, [...this.types]);
    const concurrency = this.options.concurrency ?? 4;
    const polling = this.options.pollingIntervalSeconds ?? 1;
    for (const type of this.types) {
      const definition = registry.require(type);
      // A full batch fetches again at once (burst); NOTIFY wakes the worker for new jobs; the
      // poll is only a backstop. Without burst, throughput would be batchSize per interval.
      await boss.work(
        type,
        { batchSize: concurrency, burstWhenBatchFull: true, includeMetadata: true, pollingIntervalSeconds: polling, notifyPollingIntervalSeconds: polling },
        (jobs: BossJob[]) => this.runBatch(definition, jobs),
      );
    }
    this.log.info({ types: this.types, concurrency }, 'pg-boss worker started');
  }

  /** Stops fetching and lets running jobs finish up to `timeoutMs`; pg-boss retries the rest. */
  async stop(timeoutMs: number): Promise<BossWorkerStats> {
    await this.options.boss.stop({ graceful: true, timeout: timeoutMs, close: true });
    this.log.info(this.stats, 'pg-boss worker stopped');
    return { ...this.stats };
  }

  private async runBatch(definition: JobDefinition, jobs: BossJob[]): Promise<void> {
    await markStarted(
      this.options.pool,
      this.table,
      jobs.map((job) => ({ id: job.id, attempt: job.retryCount + 1 })),
      this.workerId,
    );
    const settled = await Promise.allSettled(jobs.map((job) => this.runOne(definition, job)));
    const failed = settled.filter((outcome) => outcome.status === 'rejected');
    // Throwing makes pg-boss fail (and retry) whichever jobs of the batch are still active:
    // exactly those whose mirror and state change could not be committed.
    if (failed.length) throw (failed[0] as PromiseRejectedResult).reason;
  }

  private async runOne(definition: JobDefinition, job: BossJob): Promise<void> {
    const attempt = job.retryCount + 1;
    let outcome: Outcome;
    try {
      const payload = await this.options.registry.validate(definition.name, job.data).catch((error: unknown) => {
        throw new NonRetryableError(messageOf(error));
      });
      const timeout = AbortSignal.timeout(definition.timeoutSeconds * 1000);
      const signal = AbortSignal.any([job.signal, timeout]);
      const result = await Promise.race([
        definition.handler(payload, {
          jobId: job.id,
          attempt,
          engine: 'PGBOSS',
          signal,
          db: () => this.options.pool,
          log: (message, fields) => this.log.info({ jobId: job.id, ...fields }, message),
        }),
        new Promise<never>((_, reject) =>
          timeout.addEventListener('abort', () => reject(new Error(`timed out after ${definition.timeoutSeconds}s`)), { once: true }),
        ),
      ]);
      outcome = { ok: true, result };
    } catch (error) {
      outcome = { ok: false, failure: classifyFailure(error) };
    }
    await this.settle(definition, job, outcome);
  }

  /** The mirror row and pg-boss's state change, in one transaction. */
  private async settle(definition: JobDefinition, job: BossJob, outcome: Outcome): Promise<void> {
    const { boss, pool } = this.options;
    const attempt = job.retryCount + 1;
    const fence = { id: job.id, retryCount: job.retryCount };
    if (outcome.ok) {
      const placed = placeResult(this.table, outcome.result, { type: definition.name, payload: job.data });
      outcome = placed.ok ? { ok: true, result: outcome.result, columns: placed.columns } : placed;
    }
    const willRetry = !outcome.ok && outcome.failure.kind !== 'non-retryable' && job.retryCount < job.retryLimit;
    try {
      await withTransaction(pool, async (client) => {
        const db = clientDb(client);
        if (outcome.ok) {
          await markCompleted(client, this.table, job.id, outcome.columns ?? {});
          await boss.complete(definition.name, fence, toOutput(outcome.result), { db });
        } else {
          const { failure } = outcome;
          if (!willRetry) await exhaustRetries(client, definition.name, job.id);
          await markFailed(client, this.table, job.id, failure.message, attempt, willRetry);
          await boss.fail(definition.name, fence, { message: failure.message, kind: failure.kind }, { db });
          if (willRetry && failure.kind === 'rate-limited') {
            await delayRetry(client, definition.name, job.id, retryDelaySeconds(definition.retry, attempt, failure));
          }
        }
      });
    } catch (error) {
      this.log.error({ err: error, jobId: job.id }, 'could not commit the outcome of a job; pg-boss will retry it');
      throw error;
    }
    if (outcome.ok) this.stats.completed += 1;
    else if (willRetry) this.stats.retried += 1;
    else this.stats.failed += 1;
  }
}

/** pg-boss stores outputs as JSON objects; wrap anything else. */
function toOutput(result: unknown): object {
  return typeof result === 'object' && result !== null && !Array.isArray(result) ? result : { value: result ?? null };
}

/**
 * A NonRetryableError must not be retried, and pg-boss's `fail` retries while retries remain:
 * spending the budget first makes this failure final, so the job goes to the dead letter queue.
 */
async function exhaustRetries(client: PoolClient, name: string, id: string): Promise<void> {
  await client.query(`UPDATE ${PGBOSS_SCHEMA}.job SET retry_limit = retry_count WHERE name = $1 AND id = $2 AND state = 'active'`, [name, id]);
}

/** A rate-limited job waits longer than pg-boss's own backoff would make it. */
async function delayRetry(client: PoolClient, name: string, id: string, seconds: number): Promise<void> {
  await client.query(
    `UPDATE ${PGBOSS_SCHEMA}.job SET start_after = GREATEST(start_after, now() + make_interval(secs => $3))
      WHERE name = $1 AND id = $2 AND state = 'retry'`,
    [name, id, seconds],
  );
}
