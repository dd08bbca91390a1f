import type { JobWithMetadata, PgBoss } from 'pg-boss';
import type { Pool, PoolClient } from '../db/pool.js';
import { killedTypes } from '../db/kill-switch.js';
import { withoutNul } from '../db/refusal.js';
import { refusedData, withTransaction } from '../db/transaction.js';
import { classifyFailure, NonRetryableError, type JobFailure } from '../jobs/errors.js';
import { retryDelaySeconds, type JobDefinition } from '../jobs/define.js';
import type { JobRegistry } from '../jobs/registry.js';
import type { Logger } from '../log.js';
import { defaultWorkerId } from '../table/worker-id.js';
import type { LegacyRow } from '../table/adapter.js';
import { flipToLegacy } from '../table/handback.js';
import { GENERIC_TABLE, placeResult, resultNotStored, type LegacyTable } from '../table/table.js';
import { affected, clientDb, PGBOSS_SCHEMA } from './boss.js';
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
  /** Fetched under a kill switch and given back to legacy unrun. */
  handedBack: number;
  /** Outcomes not written because pg-boss no longer held the attempt for this worker. */
  claimsLost: number;
}

type BossJob = JobWithMetadata<unknown>;

/** A handler's outcome; `columns` is where the adapter puts a result on the row. */
type Outcome = { ok: true; result: unknown; columns?: LegacyRow } | { ok: false; failure: JobFailure };

/** pg-boss no longer holds the attempt this worker fetched: its outcome must not be written. */
class ClaimLost extends Error {}


/**
 * Runs registry handlers for pg-boss jobs, in process. The mirror row and the pg-boss state
 * change commit in one transaction per job, and the pg-boss change is fenced to the attempt
 * this worker fetched: a worker that lost its claim (stalled past expiry, stopped too late)
 * changes nothing on either side. So `Job` never says COMPLETED for a job pg-boss will run
 * again, nor the reverse: a crash before the commit leaves the job active in pg-boss, which
 * retries it after expiry, and the mirror follows on that run.
 */
export class BossWorker {
  readonly workerId: string;
  private readonly stats: BossWorkerStats = { completed: 0, failed: 0, retried: 0, handedBack: 0, claimsLost: 0 };
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

  private async runBatch(definition: JobDefinition, fetched: BossJob[]): Promise<void> {
    const jobs = await this.handBackIfKilled(definition.name, fetched);
    if (!jobs.length) return;
    const rowIds = await markStarted(
      this.options.pool,
      this.table,
      jobs.map((job) => ({ id: job.id, attempt: job.retryCount + 1 })),
      this.workerId,
    );
    // A job without a row of its own (sent around cutover) answers to its pg-boss id.
    const settled = await Promise.allSettled(jobs.map((job) => this.runOne(definition, job, rowIds.get(job.id) ?? job.id)));
    const failed = settled.filter((outcome) => outcome.status === 'rejected');
    // Throwing makes pg-boss fail (and retry) whichever jobs of the batch are still active:
    // exactly those whose mirror and state change could not be committed.
    if (failed.length) throw (failed[0] as PromiseRejectedResult).reason;
  }

  private async runOne(definition: JobDefinition, job: BossJob, rowId: string): Promise<void> {
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
          rowId,
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

  /**
   * Hand-back (DESIGN §12): a job fetched while its type's kill switch is on does not run
   * here, however late its producer's transaction committed. In one transaction its row goes
   * back to legacy PENDING and the job leaves pg-boss, fenced to the attempt fetched. Returns
   * the jobs to run: all of them when no kill switch is on.
   */
  private async handBackIfKilled(name: string, jobs: BossJob[]): Promise<BossJob[]> {
    const { pool, boss } = this.options;
    if (!(await killedTypes(pool, [name])).length) return jobs;
    const handedBack = await withTransaction(pool, async (client) => {
      const { rows: held } = await client.query<{ id: string; retry_count: number }>(
        `SELECT id, retry_count FROM ${PGBOSS_SCHEMA}.job
          WHERE name = $1 AND id = ANY($2::uuid[]) AND state = 'active' AND (id::text || ':' || retry_count::text) = ANY($3::text[])
          FOR UPDATE`,
        [name, jobs.map((job) => job.id), jobs.map((job) => `${job.id}:${job.retryCount}`)],
      );
      // A fetch that claims a job again counts the run before it in retry_count: that many attempts were made.
      const flipped = await flipToLegacy(client, this.table, held.map((job) => ({ pgbossId: job.id, attempts: job.retry_count, runAfter: null })), 'handedback');
      if (flipped.size) await boss.deleteJob(name, [...flipped], { db: clientDb(client) });
      return flipped;
    });
    if (handedBack.size) {
      this.stats.handedBack += handedBack.size;
      this.log.warn({ type: name, jobs: handedBack.size }, 'kill switch is on: handed fetched jobs back to legacy unrun');
    }
    // A job whose row could not flip (it has none, or it is final) has no legacy home: it runs here.
    return jobs.filter((job) => !handedBack.has(job.id));
  }

  /** The mirror row and pg-boss's state change, in one transaction, both or neither. */
  private async settle(definition: JobDefinition, job: BossJob, outcome: Outcome): Promise<void> {
    if (outcome.ok) {
      const placed = placeResult(this.table, outcome.result, { type: definition.name, payload: job.data });
      outcome = placed.ok ? { ok: true, result: outcome.result, columns: placed.columns } : placed;
    }
    const willRetry = !outcome.ok && outcome.failure.kind !== 'non-retryable' && job.retryCount < job.retryLimit;
    try {
      await withTransaction(this.options.pool, (client) =>
        outcome.ok ? this.storeSuccess(client, definition, job, outcome.result, outcome.columns ?? {}) : this.storeFailure(client, definition, job, outcome.failure, willRetry),
      );
    } catch (error) {
      if (error instanceof ClaimLost) {
        this.stats.claimsLost += 1;
        this.log.warn({ jobId: job.id, attempt: job.retryCount + 1 }, 'claim lost (expired or settled elsewhere); this run\'s outcome is not written');
        return;
      }
      this.log.error({ err: error, jobId: job.id }, 'could not commit the outcome of a job; pg-boss will retry it');
      throw error;
    }
    if (outcome.ok) this.stats.completed += 1;
    else if (willRetry) this.stats.retried += 1;
    else this.stats.failed += 1;
  }

  /**
   * A success is never run again: if Postgres refuses the result (a NUL byte, a value its
   * column cannot hold), the job still completes on both sides, without the result, and the
   * row's error says why it was not stored.
   */
  private async storeSuccess(client: PoolClient, definition: JobDefinition, job: BossJob, result: unknown, columns: LegacyRow): Promise<void> {
    const { boss } = this.options;
    const db = clientDb(client);
    const fence = { id: job.id, retryCount: job.retryCount };
    let completed = 0;
    let refusal = await refusedData(client, async () => (completed = affected(await boss.complete(definition.name, fence, toOutput(result), { db }))));
    if (refusal) completed = affected(await boss.complete(definition.name, fence, { resultNotStored: refusal.message }, { db }));
    if (completed !== 1) throw new ClaimLost();
    const rowRefusal = await refusedData(client, () => markCompleted(client, this.table, job.id, columns, refusal && resultNotStored(refusal)));
    if (rowRefusal) {
      refusal = rowRefusal;
      await markCompleted(client, this.table, job.id, {}, resultNotStored(rowRefusal));
    }
    if (refusal) this.log.warn({ jobId: job.id, reason: refusal.message }, 'job succeeded but its result could not be stored; completed without it');
  }

  private async storeFailure(client: PoolClient, definition: JobDefinition, job: BossJob, failure: JobFailure, willRetry: boolean): Promise<void> {
    const { boss } = this.options;
    const attempt = job.retryCount + 1;
    if (!willRetry) await exhaustRetries(client, definition.name, job);
    // A NUL in an error message would make Postgres refuse the failure itself, and the job would never settle.
    const message = withoutNul(failure.message);
    const failed = await boss.fail(definition.name, { id: job.id, retryCount: job.retryCount }, { message, kind: failure.kind }, { db: clientDb(client) });
    if (affected(failed) !== 1) throw new ClaimLost();
    await markFailed(client, this.table, job.id, message, attempt, willRetry);
    if (willRetry && failure.kind === 'rate-limited') {
      await delayRetry(client, definition.name, job, retryDelaySeconds(definition.retry, attempt, failure));
    }
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
async function exhaustRetries(client: PoolClient, name: string, job: BossJob): Promise<void> {
  await client.query(`UPDATE ${PGBOSS_SCHEMA}.job SET retry_limit = retry_count WHERE name = $1 AND id = $2 AND state = 'active' AND retry_count = $3`, [
    name,
    job.id,
    job.retryCount,
  ]);
}

/** A rate-limited job waits longer than pg-boss's own backoff would make it. */
async function delayRetry(client: PoolClient, name: string, job: BossJob, seconds: number): Promise<void> {
  await client.query(
    `UPDATE ${PGBOSS_SCHEMA}.job SET start_after = GREATEST(start_after, now() + make_interval(secs => $3))
      WHERE name = $1 AND id = $2 AND state = 'retry' AND retry_count = $4`,
    [name, job.id, seconds, job.retryCount],
  );
}
