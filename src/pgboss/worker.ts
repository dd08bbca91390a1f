import { setTimeout as sleep } from 'node:timers/promises';
import type { PgBoss } from 'pg-boss';
import type { Pool } from '../db/pool.js';
import { withTransaction } from '../db/transaction.js';
import { classifyFailure, NonRetryableError } from '../jobs/errors.js';
import type { JobDefinition } from '../jobs/define.js';
import type { JobRegistry } from '../jobs/registry.js';
import type { Logger } from '../support/log.js';
import { defaultWorkerId } from '../table/worker-id.js';
import type { LegacyRow } from '../table/adapter.js';
import { flipToLegacy, homeUntracked } from '../table/handback.js';
import { legacyPriority } from '../table/priority.js';
import { GENERIC_TABLE, placeResult, type LegacyTable } from '../table/table.js';
import { storableResult } from '../jobs/result.js';
import { clientDb } from './boss.js';
import { lockFetchedAttempts } from '../pgboss-schema/reads.js';
import { releaseUnrun } from '../pgboss-schema/settle.js';
import { backoffMs, OutageLog, retryThroughOutage } from '../db/outage.js';
import { FetchLoop, type Taken } from './fetch-loop.js';
import { fetchStarted, StartFailed } from './fetch.js';
import { GroupCommit } from './group-commit.js';
import { listenForJobs, type Listener } from './listen.js';
import { ensureQueues } from './queues.js';
import { assertIsolatable, poolDatabaseUrl, runIsolated, type RunOutcome } from './isolated.js';
import { ClaimLost, completeGroup, storeFailure, type BossJob, type GroupOutcome, type SettleContext, type Success } from './settle.js';
import { MAX_JOB_PROCESSES } from '../isolation/executor.js';
import { JobTimeoutError, messageOf, UsageError } from '../support/errors.js';

export interface BossWorkerOptions {
  boss: PgBoss;
  pool: Pool;
  registry: JobRegistry;
  log: Logger;
  /** The legacy table the mirror rows live in. @defaultValue cutover's generic table */
  table?: LegacyTable;
  /**
   * Jobs running at once per job type in this process. Types of `isolation: 'process'` run at
   * most MAX_JOB_PROCESSES (a child process each). @defaultValue 4
   */
  concurrency?: number;
  types?: readonly string[];
  workerId?: string;
  /**
   * Backstop poll while LISTEN/NOTIFY wakes the worker for new jobs; it also bounds how late a
   * delayed retry starts. @defaultValue 1
   */
  pollingIntervalSeconds?: number;
  /** For handlers of `isolation: 'process'` types that write (`context.db()`). @defaultValue the pool's connection string */
  databaseUrl?: string;
  /** Between SIGTERM and SIGKILL for a job process that overran or is stopped. @defaultValue 5000 */
  killGraceMs?: number;
  /**
   * Whether to LISTEN for new jobs (pg-boss's NOTIFY), on the connection pg-boss listens on.
   * @defaultValue whatever the boss was started with (its `useListenNotify`)
   */
  listen?: boolean;
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


/** An outcome ready to commit: a success's result made storable and placed in the row's columns. */
type Settled = Exclude<RunOutcome, { ok: true }> | { ok: true; result: unknown; columns: LegacyRow };

/** How long a fetched job with no legacy home waits in its queue under a kill switch before it is fetched (and looked at) again. */
const KILLED_WAIT_SECONDS = 300;


/** A job this worker is running: its signal, and whether its handler is still at work (not yet settling). */
interface Running {
  job: BossJob;
  name: string;
  controller: AbortController;
  handling: boolean;
}

/**
 * Runs registry handlers for pg-boss jobs, in process, or, for types that ask for
 * `isolation: 'process'`, in a child process of their own (isolated.ts). Each type has a fetch
 * loop of its own (fetch-loop.ts) that keeps `concurrency` jobs running: a job that finishes
 * frees its slot for the next fetch, so a slow job never idles the others. A fetch is pg-boss's
 * claim with the mirror rows' start and the kill switch's read in the same statement (fetch.ts).
 * Each job's mirror row and its pg-boss state change commit together, fenced to the attempt
 * this worker fetched (settle.ts): a worker that lost its claim (stalled past expiry, stopped
 * too late) changes nothing on either side, so `Job` never says COMPLETED for a job pg-boss will
 * run again, nor the reverse. A crash before the commit leaves the job active in pg-boss, which
 * retries it after expiry. Successes that are ready together share one statement (group
 * commit); a slow job holds none back.
 */
export class BossWorker {
  readonly workerId: string;
  private readonly stats: BossWorkerStats = { completed: 0, failed: 0, retried: 0, handedBack: 0, claimsLost: 0 };
  private readonly successes = new GroupCommit<Success, GroupOutcome>((group) => completeGroup(this.settleContext, group));
  private readonly types: readonly string[];
  private readonly log: Logger;
  private readonly table: LegacyTable;
  private readonly settleContext: SettleContext;
  private readonly databaseUrl: string | undefined;
  /** Job processes running, so a stop returns only once each has exited. */
  private readonly children = new Set<Promise<RunOutcome>>();
  /** Aborted by stop: the loops fetch no more. */
  private readonly stopping = new AbortController();
  /** Aborted once a stop has waited its timeout: writes still retrying through an outage give up. */
  private readonly halted = new AbortController();
  private readonly loops = new Map<string, FetchLoop>();
  private readonly running = new Set<Running>();
  private listener: Listener | undefined;
  private readonly outage: OutageLog;

  constructor(private readonly options: BossWorkerOptions) {
    this.table = options.table ?? GENERIC_TABLE;
    this.workerId = options.workerId ?? defaultWorkerId();
    this.types = options.types?.length ? options.types : options.registry.names();
    for (const type of this.types) options.registry.require(type);
    assertIsolatable(options.registry, this.types);
    const concurrency = options.concurrency ?? 4;
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
    this.databaseUrl = options.databaseUrl ?? poolDatabaseUrl(options.pool);
    if (!this.databaseUrl && this.types.some((type) => options.registry.require(type).isolation === 'process')) {
      throw new UsageError('a pg-boss worker running isolation: \'process\' job types needs a databaseUrl for their processes (its pool was not made from a connection string)');
    }
    this.log = options.log.child({ engine: 'pgboss', workerId: this.workerId });
    this.settleContext = { boss: options.boss, pool: options.pool, table: this.table, log: this.log };
    this.outage = new OutageLog(this.log, 'pg-boss worker fetch');
  }

  async start(): Promise<void> {
    const { boss, registry } = this.options;
    await ensureQueues(boss, registry, this.log, [...this.types]);
    // NOTIFY wakes a loop for new jobs; without it (a transaction pooler and no session) each
    // polls. Before the loops, so a start the database cuts short has no loop running yet and
    // can be tried again whole.
    this.listener = await listenForJobs(boss, this.options.pool, {
      ...(this.options.listen !== undefined ? { listen: this.options.listen } : {}),
      onJob: (queue) => this.loops.get(queue)?.wake(),
      onMissed: () => this.loops.forEach((loop) => loop.wake()),
      log: this.log,
    });
    const concurrency = this.options.concurrency ?? 4;
    const pollMs = (this.options.pollingIntervalSeconds ?? 1) * 1000;
    const capped: string[] = [];
    for (const type of this.types) {
      const definition = registry.require(type);
      const isolated = definition.isolation === 'process';
      if (isolated && concurrency > MAX_JOB_PROCESSES) capped.push(type);
      const slots = isolated ? Math.min(concurrency, MAX_JOB_PROCESSES) : concurrency;
      this.loops.set(type, new FetchLoop({
        slots,
        pollMs,
        signal: this.stopping.signal,
        take: (limit) => this.take(definition, limit, limit === slots),
        onError: (error, failures) => this.fetchFailed(type, error, failures),
        onRecovered: () => this.outage.recovered(),
      }));
    }
    if (capped.length) this.log.info({ types: capped, concurrency: MAX_JOB_PROCESSES }, `isolation: 'process' types run at most ${MAX_JOB_PROCESSES} jobs at once (a process each)`);
    this.log.info({ types: this.types, concurrency, listening: this.listener !== undefined }, 'pg-boss worker started');
  }

  /**
   * Stops fetching and lets running jobs finish up to `timeoutMs`. Jobs whose handlers are still
   * at work then are failed, fenced to their attempt, so pg-boss retries them (as its own stop
   * does), and their signals abort: job processes get SIGTERM, then SIGKILL after the grace. None
   * may outlive the worker and go on working unowned.
   */
  async stop(timeoutMs: number): Promise<BossWorkerStats> {
    this.stopping.abort();
    await this.listener?.close().catch(() => undefined);
    const loops = [...this.loops.values()];
    await Promise.all(loops.map((loop) => loop.stopped));
    const drained = Promise.all(loops.map((loop) => loop.drained()));
    const timer = sleep(timeoutMs, 'timeout' as const, { signal: this.halted.signal }).catch(() => undefined);
    if ((await Promise.race([drained, timer])) === 'timeout') await this.abandon();
    this.halted.abort();
    await Promise.allSettled(this.children);
    await this.options.boss.stop({ graceful: true, timeout: Math.max(1000, timeoutMs), close: true });
    this.log.info(this.stats, 'pg-boss worker stopped');
    return { ...this.stats };
  }

  /** The shutdown timeout has passed: jobs still running are given back to pg-boss as failed attempts. */
  private async abandon(): Promise<void> {
    const abandoned = [...this.running].filter((entry) => entry.handling);
    const byType = new Map<string, BossJob[]>();
    for (const { name, job } of abandoned) byType.set(name, [...(byType.get(name) ?? []), job]);
    for (const [name, jobs] of byType) {
      try {
        await this.options.boss.fail(name, jobs.map((job) => ({ id: job.id, retryCount: job.retryCount })), { message: 'the worker stopped before the job finished' });
      } catch (error) {
        // Unreachable: they stay active and pg-boss retries them after expiry.
        this.log.warn({ type: name, jobs: jobs.length, err: error }, 'could not fail the jobs still running at shutdown; pg-boss retries them after expiry');
      }
    }
    // Failed first, aborted then (as pg-boss's own stop does): a handler that returns on its
    // signal finds its attempt settled, and its late outcome is refused by the fence.
    for (const entry of abandoned) entry.controller.abort(new Error('the worker stopped before the job finished'));
    if (abandoned.length) this.log.warn({ jobs: abandoned.length }, 'shutdown timeout reached: jobs still running were failed, pg-boss retries them');
  }

  /** One fetch of up to `limit` jobs of a type, started: a slot per job, held until its outcome is committed. */
  private async take(definition: JobDefinition, limit: number, allSlots: boolean): Promise<Taken> {
    const { name } = definition;
    const fetched = await fetchStarted(this.options.boss, this.options.pool, this.table, { name, limit, workerId: this.workerId, prepare: allSlots });
    const jobs = fetched.jobs.map(({ job }) => job);
    if (!jobs.length) return { fetched: 0, running: [] };
    if (fetched.killed) {
      const handingBack = this.handBack(name, jobs).catch((error: unknown) => this.handBackFailed(name, jobs, error));
      return { fetched: jobs.length, running: jobs.map(() => handingBack) };
    }
    // A job without a row of its own (sent around cutover) answers to its pg-boss id.
    return { fetched: jobs.length, running: fetched.jobs.map(({ job, rowId }) => this.runTracked(definition, job, rowId ?? job.id)) };
  }

  /** Delay before the next fetch after `failures` failed in a row; says why once per outage. */
  private fetchFailed(type: string, error: unknown, failures: number): number {
    if (error instanceof StartFailed) {
      // The claim and the rows' start are one statement: what failed took nothing with it.
      this.log.warn({ type, reason: messageOf(error.cause) }, 'could not mark a fetched batch started; gave it back to its queue unrun, no attempt spent');
    } else {
      this.outage.failed(error, `could not fetch jobs of ${type}`);
    }
    return backoffMs(100, failures, 5000);
  }

  /** Runs one fetched job to its committed outcome; never rejects, and holds its slot until then. */
  private async runTracked(definition: JobDefinition, job: BossJob, rowId: string): Promise<void> {
    const entry: Running = { job, name: definition.name, controller: new AbortController(), handling: true };
    // pg-boss's own work() hands each job a signal; ours aborts when a stop gives up waiting for it.
    job.signal = entry.controller.signal;
    this.running.add(entry);
    try {
      await this.runOne(definition, job, rowId, entry);
    } catch (error) {
      await this.failUncommitted(definition.name, job, error);
    } finally {
      this.running.delete(entry);
    }
  }

  /**
   * The outcome could not be committed (its statement refused, not the database away): pg-boss
   * fails the attempt, fenced, as its own work() does for a handler that threw, and retries it.
   */
  private async failUncommitted(name: string, job: BossJob, error: unknown): Promise<void> {
    try {
      await this.options.boss.fail(name, { id: job.id, retryCount: job.retryCount }, { message: messageOf(error) });
    } catch (failure) {
      this.log.error({ err: failure, jobId: job.id }, 'could not fail a job whose outcome could not be committed; pg-boss retries it after expiry');
    }
  }

  /** Hand-back could not commit: the jobs go back to their queue unrun, to be fetched (and looked at) again. */
  private async handBackFailed(name: string, jobs: readonly BossJob[], error: unknown): Promise<void> {
    this.log.error({ type: name, jobs: jobs.length, err: error }, 'kill switch is on but fetched jobs could not be handed back; not run, back in their queue');
    await this.releaseUnrun(name, jobs, 5).catch(() => undefined);
  }

  /** Fetched jobs back to their queue unrun, no attempt spent, fetchable again after `waitSeconds` (releaseUnrun). */
  private releaseUnrun(name: string, jobs: readonly BossJob[], waitSeconds: number) {
    return this.options.pool.query<{ id: string }>(releaseUnrun, [name, jobs.map((job) => job.id), jobs.map((job) => `${job.id}:${job.retryCount}`), waitSeconds]);
  }

  private async runOne(definition: JobDefinition, job: BossJob, rowId: string, entry: Running): Promise<void> {
    let outcome: RunOutcome;
    try {
      // Validated here for isolated types too: a payload that can never run costs no process.
      const payload = await this.options.registry.validate(definition.name, job.data).catch((error: unknown) => {
        throw new NonRetryableError(messageOf(error));
      });
      outcome = definition.isolation === 'process' ? await this.runInChild(definition, job, rowId) : { ok: true, result: await this.runInProcess(definition, job, rowId, payload) };
    } catch (error) {
      outcome = { ok: false, failure: classifyFailure(error) };
    }
    // From here a stop that gives up waiting leaves the commit alone: failing the attempt now could undo a success.
    entry.handling = false;
    await this.settle(definition, job, outcome);
  }

  private async runInProcess(definition: JobDefinition, job: BossJob, rowId: string, payload: unknown): Promise<unknown> {
    const timeout = AbortSignal.timeout(definition.timeoutSeconds * 1000);
    const signal = AbortSignal.any([job.signal, timeout]);
    return Promise.race([
      definition.handler(payload, {
        jobId: job.id,
        rowId,
        attempt: job.retryCount + 1,
        engine: 'PGBOSS',
        signal,
        db: () => this.options.pool,
        log: (message, fields) => this.log.info({ jobId: job.id, ...fields }, message),
      }),
      new Promise<never>((_, reject) =>
        timeout.addEventListener('abort', () => reject(new JobTimeoutError(definition.name, definition.timeoutSeconds)), { once: true }),
      ),
    ]);
  }

  /** The job in a process of its own (isolated.ts): the child gets the raw payload and validates it itself. */
  private async runInChild(definition: JobDefinition, job: BossJob, rowId: string): Promise<RunOutcome> {
    const run = runIsolated(definition, job, rowId, {
      registry: this.options.registry,
      databaseUrl: this.databaseUrl!, // checked in the constructor for every isolated type
      log: this.log,
      killGraceMs: this.options.killGraceMs ?? 5000,
    });
    this.children.add(run);
    try {
      return await run;
    } finally {
      this.children.delete(run);
    }
  }

  /**
   * Hand-back (DESIGN §12): a job fetched while its type's kill switch is on does not run
   * here, however late its producer's transaction committed. In one transaction its row goes
   * back to legacy PENDING and the job leaves pg-boss, fenced to the attempt fetched; a job with
   * no row (sent after `finalize --tracking off`) is first given one through the adapter's
   * toRow. The kill switch is read by fetchStarted, in the statement that fetched the batch. A job that still has no legacy home (its row is final, or the table refused one)
   * does not run either: it goes back to its queue unrun, to wait out the kill switch.
   */
  private async handBack(name: string, jobs: BossJob[]): Promise<void> {
    const { pool, boss } = this.options;
    const { handedBack, refused } = await withTransaction(pool, async (client) => {
      const { rows: held } = await client.query<{ id: string; retry_count: number }>(
        lockFetchedAttempts,
        [name, jobs.map((job) => job.id), jobs.map((job) => `${job.id}:${job.retryCount}`)],
      );
      // A fetch that claims a job again counts the run before it in retry_count: that many attempts were made.
      const attempts = new Map(held.map((job) => [job.id, job.retry_count]));
      const returning = (ids: Iterable<string>) => [...ids].map((id) => ({ pgbossId: id, attempts: attempts.get(id)!, runAfter: null }));
      const flipped = await flipToLegacy(client, this.table, returning(attempts.keys()), 'handedback');
      const untracked = jobs.filter((job) => attempts.has(job.id) && !flipped.has(job.id));
      const home = await homeUntracked(client, this.table, untracked.map((job) => ({ pgbossId: job.id, name, data: job.data, priority: legacyPriority(job.priority), retryLimit: job.retryLimit, createdOn: job.createdOn })));
      for (const id of await flipToLegacy(client, this.table, returning(home.homed), 'handedback')) flipped.add(id);
      if (flipped.size) await boss.deleteJob(name, [...flipped], { db: clientDb(client) });
      return { handedBack: flipped, refused: home.refused };
    });
    if (handedBack.size) {
      this.stats.handedBack += handedBack.size;
      this.log.warn({ type: name, jobs: handedBack.size }, 'kill switch is on: handed fetched jobs back to legacy unrun');
    }
    const homeless = jobs.filter((job) => !handedBack.has(job.id));
    if (homeless.length) {
      const { rowCount } = await this.releaseUnrun(name, homeless, KILLED_WAIT_SECONDS);
      this.log.error(
        { type: name, jobs: rowCount, ...(refused ? { reason: refused } : {}) },
        `kill switch is on and these fetched jobs have no legacy home (${refused ? 'the table refused a row' : 'their row is final'}): not run, back in their queue for ${KILLED_WAIT_SECONDS}s`,
      );
    }
  }

  /** The mirror row and pg-boss's state change, both or neither. */
  private async settle(definition: JobDefinition, job: BossJob, ran: RunOutcome): Promise<void> {
    let outcome: Settled;
    if (ran.ok) {
      // A success is final: a result JSON cannot encode (a BigInt, a cycle) is stored as far as
      // it can be, with a warning saying what changed, never failed and run again for it.
      const storable = storableResult(ran.result);
      if (storable.notes.length) this.log.warn({ jobId: job.id, type: definition.name, notes: storable.notes }, 'job succeeded; its result was stored as far as it could be');
      const placed = placeResult(this.table, storable.value, { type: definition.name, payload: job.data });
      outcome = placed.ok ? { ok: true, result: storable.value, columns: placed.columns } : placed;
    } else {
      outcome = ran;
    }
    const willRetry = !outcome.ok && outcome.failure.kind !== 'non-retryable' && job.retryCount < job.retryLimit;
    let retried = false;
    try {
      // Through an outage the outcome is committed when the database is back, however long that
      // takes: the fence in each statement decides whether this worker still holds the attempt,
      // so a commit after expiry writes nothing if pg-boss gave the job to another worker, and
      // completes it if not. Giving up early would make pg-boss run a finished job again.
      await retryThroughOutage(() => this.commitOutcome(definition, job, outcome, willRetry), {
        signal: this.halted.signal,
        onRetry: () => {
          retried = true;
          this.log.warn({ jobId: job.id, type: definition.name }, 'could not commit the outcome of a job: database unreachable; retrying until it is back');
        },
      });
    } catch (error) {
      if (error instanceof ClaimLost) {
        this.stats.claimsLost += 1;
        // A try whose answer the outage swallowed may have committed: the fence then refuses the next.
        const why = retried ? 'claim lost (expired or settled elsewhere), or an earlier try whose answer was lost committed it' : 'claim lost (expired or settled elsewhere)';
        this.log.warn({ jobId: job.id, attempt: job.retryCount + 1 }, `${why}; this run's outcome is not written now`);
        return;
      }
      this.log.error({ err: error, jobId: job.id }, 'could not commit the outcome of a job; pg-boss will retry it');
      throw error;
    }
    if (outcome.ok) this.stats.completed += 1;
    else if (willRetry) this.stats.retried += 1;
    else this.stats.failed += 1;
  }

  private async commitOutcome(definition: JobDefinition, job: BossJob, outcome: Settled, willRetry: boolean): Promise<void> {
    if (!outcome.ok) {
      const { failure } = outcome;
      await withTransaction(this.options.pool, (client) => storeFailure(this.settleContext, client, definition, job, failure, willRetry));
      return;
    }
    // Successes ready together commit together; see completeGroup.
    const completed = await this.successes.submit({ definition, job, result: outcome.result, columns: outcome.columns });
    if (completed === 'lost') throw new ClaimLost();
    if (completed !== 'completed') throw completed.error;
  }

}

