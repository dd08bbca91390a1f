import type { Pool, PoolClient } from '../db/pool.js';
import { clientTx } from '../db/sql.js';
import { withTransaction } from '../db/transaction.js';
import { DEFAULT_RETRY, retryDelaySeconds } from '../jobs/define.js';
import type { JobFailure } from '../jobs/errors.js';
import type { JobRegistry } from '../jobs/registry.js';
import type { Logger } from '../support/log.js';
import { executeInChild, MAX_JOB_PROCESSES, type ChildOutcome } from '../isolation/executor.js';
import {
  claimNextLegacyJob,
  completeLegacyJob,
  completeLegacyJobWithoutResult,
  failLegacyJob,
  heartbeat,
  lockRunningLegacyJob,
  lockStaleLegacyJobs,
  releaseLegacyJob,
  requeueFailedLegacyJob,
  retryLegacyJob,
  settleFinalFailure,
  type TypedRow,
} from './sql.js';
import { backoffMs, OutageLog } from '../db/outage.js';
import { isDataRefusal, withoutNul } from '../db/refusal.js';
import type { LegacyRow } from '../table/adapter.js';
import { GENERIC_TABLE, maxAttemptsOf, newRowIds, placeResult, resultNotStored, rowId, toJob, type LegacyTable } from '../table/table.js';
import { messageOf } from '../support/errors.js';
import { defaultWorkerId } from '../table/worker-id.js';

/** A claimed legacy row, as the runner needs it. */
interface ClaimedJob {
  id: string;
  type: string;
  payload: unknown;
  /** This run's number within the retry chain. */
  attempts: number;
}

export interface LegacyRunnerOptions {
  pool: Pool;
  /** Handed to job processes for handlers that write to the database. */
  databaseUrl: string;
  registry: JobRegistry;
  log: Logger;
  /** The legacy table, through its adapter. @defaultValue cutover's generic table */
  table?: LegacyTable;
  /** @defaultValue `<hostname>:<pid>:<random>` */
  workerId?: string;
  /** Children at once, 1..20. @defaultValue 4 (the legacy cap of a few children per host) */
  concurrency?: number;
  /** @defaultValue 1000, like the legacy poller */
  pollMs?: number;
  /** Only these job types; all when empty. */
  types?: readonly string[];
  /** @defaultValue 5000 */
  heartbeatMs?: number;
  /** A RUNNING row whose heartbeat is older than this is recovered. @defaultValue 30000 */
  staleAfterMs?: number;
  /** How long a shutdown waits for running children before killing them. @defaultValue 30000 */
  shutdownTimeoutMs?: number;
  /** Between SIGTERM and SIGKILL for an overrunning child. @defaultValue 5000 */
  killGraceMs?: number;
  /** The job process entry; tests point it at fixtures. @defaultValue the compiled child.js */
  childEntry?: string;
}

/**
 * Backoff between attempts to record a success the database would not take (connection lost,
 * database restarting): short first, since most outages are brief, and capped so the record
 * lands soon after the database is back.
 */
const RECORD_RETRY_FIRST_MS = 500;
const RECORD_RETRY_MAX_MS = 5000;

export interface RunnerStats {
  completed: number;
  failed: number;
  retried: number;
  recovered: number;
  released: number;
}

/**
 * The reference legacy runner: the legacy system's model (poll, claim one row, one child
 * process per job) without its defects: exit codes don't override results, retries back off,
 * dead workers' rows are recovered, shutdown loses nothing, and PGBOSS rows are never touched.
 */
export class LegacyRunner {
  readonly workerId: string;
  private readonly options: Required<Omit<LegacyRunnerOptions, 'types' | 'childEntry' | 'workerId'>> &
    Pick<LegacyRunnerOptions, 'types' | 'childEntry'>;
  private readonly running = new Map<string, Promise<void>>();
  private readonly stats: RunnerStats = { completed: 0, failed: 0, retried: 0, recovered: 0, released: 0 };
  private readonly shutdown = new AbortController();
  private wake: (() => void) | undefined;
  private readonly outage: OutageLog;
  private claimFailures = 0;

  constructor(options: LegacyRunnerOptions) {
    const concurrency = options.concurrency ?? 4;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > MAX_JOB_PROCESSES) {
      throw new RangeError(`concurrency must be an integer from 1 to ${MAX_JOB_PROCESSES}, got ${concurrency}`);
    }
    this.workerId = options.workerId ?? defaultWorkerId();
    this.options = {
      heartbeatMs: 5000,
      staleAfterMs: 30_000,
      shutdownTimeoutMs: 30_000,
      killGraceMs: 5000,
      pollMs: 1000,
      table: GENERIC_TABLE,
      ...options,
      concurrency,
      log: options.log.child({ engine: 'legacy', workerId: this.workerId }),
    };
    this.outage = new OutageLog(this.options.log, 'legacy runner');
  }

  /** Runs until `signal` aborts, then shuts down gracefully and returns what it did. */
  async run(signal: AbortSignal): Promise<RunnerStats> {
    const { log, pollMs, heartbeatMs, staleAfterMs } = this.options;
    log.info({ concurrency: this.options.concurrency, pollMs, types: this.options.types ?? 'all' }, 'legacy runner started');
    const heartbeatTimer = setInterval(() => void this.beat(), heartbeatMs);
    const recoveryTimer = setInterval(() => void this.recoverStaleSafely(), Math.max(1000, Math.min(staleAfterMs / 2, 15_000)));
    const onAbort = () => this.wake?.();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await this.recoverStaleSafely();
      while (!signal.aborted) {
        if (this.running.size >= this.options.concurrency) {
          await this.sleep(pollMs);
          continue;
        }
        const job = await this.claim();
        if (job) this.start(job);
        // Through a database outage the poll backs off, doubling up to 30 s.
        else await this.sleep(this.claimFailures ? backoffMs(pollMs, this.claimFailures) : pollMs);
      }
      await this.drain();
    } finally {
      clearInterval(heartbeatTimer);
      clearInterval(recoveryTimer);
      signal.removeEventListener('abort', onAbort);
    }
    log.info(this.stats, 'legacy runner stopped');
    return { ...this.stats };
  }

  /** Stale-row recovery as one pass, for the loop and for operators: counts what it recovered. */
  async recoverStale(limit = 100): Promise<number> {
    const { table } = this.options;
    const recovered = await withTransaction(this.options.pool, async (client) => {
      const stale = await lockStaleLegacyJobs(client, table, this.options.staleAfterMs / 1000, limit, { workerId: this.workerId, ids: [...this.running.keys()] });
      for (const row of stale) {
        const message = `worker ${row.workerId ?? 'unknown'} stopped heartbeating; job presumed dead`;
        await this.fail(client, row.id, null, message, null, { message, kind: 'retryable' });
      }
      return stale.length;
    });
    if (recovered) this.options.log.warn({ recovered }, 'recovered jobs of a dead worker');
    this.stats.recovered += recovered;
    return recovered;
  }

  private async recoverStaleSafely(): Promise<void> {
    await this.recoverStale().catch((error: unknown) => this.outage.failed(error, 'stale-job recovery failed'));
  }

  private async claim(): Promise<ClaimedJob | undefined> {
    const { pool, table, log } = this.options;
    let row: TypedRow | undefined;
    try {
      row = await claimNextLegacyJob(pool, table, this.workerId, this.options.types);
      this.claimFailures = 0;
      this.outage.recovered();
    } catch (error) {
      // A database blip must not kill the runner: back off and try again.
      this.claimFailures += 1;
      this.outage.failed(error, 'claim failed');
      return undefined;
    }
    if (!row) return undefined;
    const id = rowId(table, row);
    // The run's number, whatever the table's attempts count (runs, failed runs, retries).
    const attempts = Number(row.cutover_run ?? row[table.names.attempts]);
    try {
      const job = toJob(table, row);
      return { id, type: job.type, payload: job.payload, attempts };
    } catch (error) {
      // A row the adapter cannot read would fail the same way on every run: fail it for good.
      const message = messageOf(error);
      log.error({ jobId: id, error: message }, 'claimed a row the legacy adapter cannot map');
      await failLegacyJob(pool, table, id, this.workerId, message, null).catch((failure: unknown) => log.error({ err: failure, jobId: id }, 'could not fail an unmappable row'));
      this.stats.failed += 1;
      return undefined;
    }
  }

  private start(job: ClaimedJob): void {
    const task = this.execute(job)
      .catch((error: unknown) => this.options.log.error({ err: error, jobId: job.id }, 'could not record the outcome of a job'))
      .finally(() => {
        this.running.delete(job.id);
        this.wake?.();
      });
    this.running.set(job.id, task);
  }

  private async execute(job: ClaimedJob): Promise<void> {
    const definition = this.options.registry.get(job.type);
    const timeoutMs = (definition?.timeoutSeconds ?? 300) * 1000;
    const outcome = await executeInChild(
      { jobId: job.id, type: job.type, payload: job.payload, attempt: job.attempts, ...(this.options.registry.module ? { registryModule: this.options.registry.module } : {}) },
      {
        timeoutMs,
        killGraceMs: this.options.killGraceMs,
        databaseUrl: this.options.databaseUrl,
        signal: this.shutdown.signal,
        // The heap cap of an isolated type holds on both engines.
        ...(definition?.memoryLimitMb ? { memoryLimitMb: definition.memoryLimitMb } : {}),
        ...(this.options.childEntry ? { entry: this.options.childEntry } : {}),
      },
    );
    await this.record(job, outcome);
  }

  private async record(job: ClaimedJob, outcome: ChildOutcome): Promise<void> {
    const { pool, log, table } = this.options;
    // A NUL in a job's output must not cost it its outcome: text and jsonb columns refuse it.
    const logs = withoutNul(outcome.logs);
    let failure: JobFailure;
    if (outcome.ok) {
      const placed = placeResult(table, outcome.result, { type: job.type, payload: job.payload });
      if (placed.ok) {
        if (await this.recordSuccess(job, placed.columns, logs)) this.stats.completed += 1;
        return;
      }
      failure = placed.failure;
    } else {
      failure = outcome.failure;
    }
    if (this.shutdown.signal.aborted && !outcome.ok && outcome.interrupted) {
      await releaseLegacyJob(pool, table, job.id, this.workerId, 'interrupted by worker shutdown; queued again');
      this.stats.released += 1;
      return;
    }
    const message = withoutNul(failure.message);
    const failed = await withTransaction(pool, (client) => this.fail(client, job.id, this.workerId, message, logs, failure));
    if (failed) this.stats.failed += 1;
    log.warn({ jobId: job.id, type: job.type, attempt: job.attempts, error: message }, 'job failed');
  }

  /**
   * Records a success until it is recorded, the row turns out no longer ours, or the runner is
   * stopped hard (DESIGN §12 "A success is never run again"). Giving up early would leave the
   * row RUNNING for stale recovery to fail and retry, so the job would run again; meanwhile it
   * stays in `running`, so its heartbeat goes on and no recovery takes it. True when recorded.
   */
  private async recordSuccess(job: ClaimedJob, columns: LegacyRow, logs: string): Promise<boolean> {
    const { log } = this.options;
    let delayMs = RECORD_RETRY_FIRST_MS;
    for (let attempt = 1; ; attempt += 1) {
      try {
        const recorded = await this.storeSuccess(job, columns, logs);
        if (attempt > 1) log.info({ jobId: job.id, attempts: attempt }, 'recorded the completed job after retrying');
        return recorded;
      } catch (error) {
        if (this.shutdown.signal.aborted) {
          log.error({ err: error, jobId: job.id, type: job.type }, 'gave up recording a job that succeeded: its row stays RUNNING, and stale-job recovery may run it again');
          return false;
        }
        if (attempt === 1) log.warn({ err: error, jobId: job.id, type: job.type }, 'could not record a job that succeeded; retrying with backoff while keeping its heartbeat');
        await pause(delayMs, this.shutdown.signal);
        delayMs = Math.min(delayMs * 2, RECORD_RETRY_MAX_MS);
      }
    }
  }

  /**
   * The completion write, then, if the database refuses a value in it, the same without the
   * result columns and with the reason in the error column, then also without the logs. Other
   * errors are thrown for recordSuccess to retry.
   */
  private async storeSuccess(job: ClaimedJob, columns: LegacyRow, logs: string): Promise<boolean> {
    const { pool, table, log } = this.options;
    try {
      return await completeLegacyJob(pool, table, job.id, this.workerId, columns, logs);
    } catch (error) {
      if (!isDataRefusal(error)) throw error;
      const note = resultNotStored(error);
      let recorded: boolean;
      try {
        recorded = await completeLegacyJobWithoutResult(pool, table, job.id, this.workerId, note, logs);
      } catch (second) {
        if (!isDataRefusal(second)) throw second;
        recorded = await completeLegacyJobWithoutResult(pool, table, job.id, this.workerId, withoutNul(`${note}; its logs neither: ${messageOf(second)}`), null);
      }
      if (recorded) log.warn({ jobId: job.id, type: job.type, err: error }, 'recorded a job that succeeded without its result, which the database refused');
      return recorded;
    }
  }

  /**
   * Records a failed run (`owner` null: whoever held it, for stale recovery) and its retry, in
   * the caller's transaction. A same-row retry is decided first and written in one statement
   * (requeueFailedLegacyJob), so the row never shows FAILED on its way back to PENDING. False
   * when the row is no longer ours.
   */
  private async fail(client: PoolClient, id: string, owner: string | null, message: string, logs: string | null, failure: JobFailure): Promise<boolean> {
    const { table } = this.options;
    if (table.retries === 'same-row') {
      const row = await lockRunningLegacyJob(client, table, id, owner);
      if (!row) return false;
      const delay = this.retryDelay(row, failure);
      if (delay !== null) {
        const requeued = await requeueFailedLegacyJob(client, table, id, owner, message, logs, delay);
        if (requeued) this.stats.retried += 1;
        return requeued;
      }
    }
    const row = await failLegacyJob(client, table, id, owner, message, logs);
    if (row) await this.maybeRetry(client, row, failure);
    return row !== undefined;
  }

  /** When a failed run is retried, in seconds from now; null when it failed for good. */
  private retryDelay(failed: TypedRow, failure: JobFailure): number | null {
    const { table, registry } = this.options;
    const type = failed.cutover_type;
    const attempts = Number(failed.cutover_run ?? failed[table.names.attempts]);
    if (failure.kind === 'non-retryable' || attempts >= maxAttemptsOf(table, failed, registry, type)) return null;
    return retryDelaySeconds(registry.get(type)?.retry ?? DEFAULT_RETRY, attempts, failure);
  }

  private async maybeRetry(client: PoolClient, failed: TypedRow, failure: JobFailure): Promise<void> {
    const { table } = this.options;
    const delay = this.retryDelay(failed, failure);
    if (delay === null) {
      await settleFinalFailure(client, table, rowId(table, failed));
      return;
    }
    const [retryId] = table.retries === 'same-row' ? [null] : await newRowIds(clientTx(client), table, 1);
    await retryLegacyJob(client, table, rowId(table, failed), retryId ?? null, delay);
    this.stats.retried += 1;
  }

  private async beat(): Promise<void> {
    await heartbeat(this.options.pool, this.options.table, this.workerId, [...this.running.keys()]).catch((error: unknown) => this.outage.failed(error, 'heartbeat failed'));
  }

  private async drain(): Promise<void> {
    if (!this.running.size) return;
    const { log, shutdownTimeoutMs } = this.options;
    log.info({ running: this.running.size, timeoutMs: shutdownTimeoutMs }, 'waiting for running jobs');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), shutdownTimeoutMs)));
    const all = Promise.all(this.running.values());
    if ((await Promise.race([all, timedOut])) === 'timeout') {
      log.warn({ running: this.running.size }, 'shutdown timeout: stopping the remaining jobs and queueing them again');
      this.shutdown.abort();
      await all;
    }
    clearTimeout(timer);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}

/** Waits `ms`, or less if `signal` aborts first. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
