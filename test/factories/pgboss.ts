// pg-boss jobs in a given state, made the way pg-boss itself makes them: send (or insert) to
// create, fetch to make active, complete / fail / cancel to settle. Only what pg-boss's API cannot
// reach is written to its table, each in one narrowly named function below that says why. Tests
// use these instead of writing pgboss.job themselves, so a pg-boss upgrade that changes the table
// breaks one file, not twenty.
import type { PgBoss, SendOptions } from 'pg-boss';
import type { Pool } from '../../src/db/pool.js';
import { insertJobRows } from '../../src/table/tracking.js';
import { GENERIC_TABLE } from '../../src/table/table.js';

export type PgbossState = 'created' | 'retry' | 'active' | 'completed' | 'failed' | 'cancelled';

/** What the factories need: a started pg-boss client (for its API) and a pool (for the rest). */
export interface BossDb {
  boss: PgBoss;
  pool: Pool;
}

/** One job: its queue (pg-boss's name) and id. */
export interface JobRef {
  queue: string;
  id: string;
}

export interface PgbossJobOptions {
  queue: string;
  /** @defaultValue 'created' */
  state?: PgbossState;
  id?: string;
  /** @defaultValue {} */
  data?: object;
  priority?: number;
  /** @defaultValue the queue's; 0 when `state` is 'failed', so one failure is final */
  retryLimit?: number;
  /** Attempts already made and failed (each one fetched and failed through the API). @defaultValue 0 */
  retryCount?: number;
  startAfter?: Date | number | string;
  /** How long pg-boss keeps the job once it is finished (what sets keep_until). */
  retentionSeconds?: number;
  /** The output a 'completed' or 'failed' job settles with. */
  output?: object;
  /**
   * Also write the job's tracking row (engine PGBOSS, same id), as RolloutManager.enqueue does,
   * with the job type's maxAttempts (the tracking row's default: 1 + `retryLimit`, else 3).
   */
  tracked?: boolean | { maxAttempts: number };
}

/** A job in `options.state`, with state-consistent defaults; returns where it is. */
export async function pgbossJob(db: BossDb, options: PgbossJobOptions): Promise<JobRef> {
  const state = options.state ?? 'created';
  const retryCount = options.retryCount ?? 0;
  let id = options.id;
  if (options.tracked) {
    [id] = await insertJobRows(queryOf(db.pool), GENERIC_TABLE, [{ ...(id ? { id } : {}), type: options.queue, payload: options.data ?? {}, maxAttempts: typeof options.tracked === 'object' ? options.tracked.maxAttempts : options.retryLimit !== undefined ? options.retryLimit + 1 : 3, engine: 'PGBOSS', routeReason: 'bucket' }]);
  }
  const send: SendOptions = {
    ...(id ? { id } : {}),
    ...(options.priority !== undefined ? { priority: options.priority } : {}),
    ...(options.startAfter !== undefined ? { startAfter: options.startAfter } : {}),
    ...(options.retentionSeconds !== undefined ? { retentionSeconds: options.retentionSeconds } : {}),
    ...(options.retryLimit !== undefined ? { retryLimit: options.retryLimit } : state === 'failed' ? { retryLimit: retryCount } : {}),
    // Earlier attempts are failed at once and fetched again, so they must not wait out a delay.
    ...(retryCount > 0 ? { retryDelay: 0, retryBackoff: false } : {}),
  };
  const sent = await db.boss.send(options.queue, options.data ?? {}, send);
  if (!sent) throw new Error(`pgbossJob: pg-boss did not create a ${options.queue} job (a singleton or throttle refused it)`);
  const ref = { queue: options.queue, id: sent };
  for (let attempt = 0; attempt < retryCount; attempt += 1) {
    await fetchJob(db, ref);
    await db.boss.fail(ref.queue, ref.id, { message: `factory: failed attempt ${attempt + 1}` });
  }
  await moveJobTo(db, ref, state, options.output);
  return ref;
}

/**
 * Moves an existing job on to `state` through pg-boss's API, as a worker would: 'active' fetches
 * it, 'retry' fetches and fails it (it must have a retry left), 'completed' and 'failed' fetch and
 * settle it ('failed' must be its last attempt: see onLastAttempt), 'cancelled' cancels it.
 */
export async function moveJobTo(db: BossDb, ref: JobRef, state: PgbossState, output?: object): Promise<void> {
  if (state === 'created') return;
  if (state === 'cancelled') {
    await db.boss.cancel(ref.queue, ref.id);
  } else {
    const job = await fetchJob(db, ref);
    if (state === 'completed') await db.boss.complete(ref.queue, job, output ?? {});
    if (state === 'failed' || state === 'retry') await db.boss.fail(ref.queue, job, output ?? { message: 'factory: failed' });
  }
  const reached = await db.boss.getJobById(ref.queue, ref.id);
  if (reached?.state !== state) throw new Error(`moveJobTo: ${ref.queue} job ${ref.id} is ${reached?.state ?? 'gone'}, not ${state}`);
}

/**
 * Fetches the job as a worker would. fetch takes the next job of its queue, not a chosen one, so
 * the job must be the next its queue hands out: refused loudly otherwise rather than fetching
 * (and so changing) another.
 */
export async function fetchJob(db: BossDb, ref: JobRef): Promise<{ id: string; retryCount: number }> {
  const [job] = await db.boss.fetch(ref.queue);
  if (job?.id !== ref.id) {
    throw new Error(`fetchJob: ${ref.queue} handed out ${job ? `job ${job.id}` : 'no job'}, not ${ref.id}; make the job the next one ready in its queue`);
  }
  return job;
}

// Faults pg-boss's API has no way to make: each writes pgboss.job directly, for one job, and
// refuses to go unnoticed when it matched no row.

/**
 * What expiry and then another worker's fetch leave, in one step: the job active again under a
 * new attempt (retry_count one more, started now). Through the API it takes fail, then fetch, and
 * between the two any worker polling the queue (the test's own, the late one included) could
 * claim the job; a test of a lost claim needs the takeover to be the only thing that happens.
 */
export async function reclaimJob(db: Pick<BossDb, 'pool'>, ref: JobRef): Promise<void> {
  await writeOne(db, ref, `retry_count = retry_count + 1, started_on = now()`, `AND state = 'active'`);
}

/** Makes the job's current attempt its last: pg-boss's API cannot lower an existing job's retry limit. */
export async function onLastAttempt(db: Pick<BossDb, 'pool'>, ref: JobRef): Promise<void> {
  await writeOne(db, ref, `retry_limit = retry_count`);
}

/**
 * An active job whose attempt is overdue: a 1 s expiry, started a minute ago, so the next
 * supervision pass expires it. The API sets expiry only at send and never moves started_on.
 */
export async function expireJob(db: Pick<BossDb, 'pool'>, ref: JobRef): Promise<void> {
  await writeOne(db, ref, `expire_seconds = 1, started_on = now() - interval '1 minute'`, `AND state = 'active'`);
}

/** An active job that started `seconds` ago (a job stuck past its timeout); the API never moves started_on. */
export async function startedAgo(db: Pick<BossDb, 'pool'>, ref: JobRef, seconds: number): Promise<void> {
  await writeOne(db, ref, `started_on = now() - make_interval(secs => $3)`, `AND state = 'active'`, [seconds]);
}

/**
 * A completed job put back to 'retry', as expiry leaves a job whose worker died after its work
 * but before completing it. pg-boss's own retry() only takes failed jobs back.
 */
export async function reviveCompleted(db: Pick<BossDb, 'pool'>, ref: JobRef): Promise<void> {
  await writeOne(db, ref, `state = 'retry', completed_on = NULL, output = NULL`, `AND state = 'completed'`);
}

/** A job whose retention ran out (it was sent longer ago than its queue keeps jobs): the API never moves keep_until. */
export async function pastRetention(db: Pick<BossDb, 'pool'>, ref: JobRef): Promise<void> {
  await writeOne(db, ref, `keep_until = now() - interval '1 day'`);
}

async function writeOne(db: Pick<BossDb, 'pool'>, ref: JobRef, set: string, and = '', extra: unknown[] = []): Promise<void> {
  const { rowCount } = await db.pool.query(`UPDATE pgboss.job SET ${set} WHERE name = $1 AND id = $2 ${and}`, [ref.queue, ref.id, ...extra]);
  if (rowCount !== 1) throw new Error(`no ${ref.queue} job ${ref.id} to change (${set}${and ? ` ${and}` : ''})`);
}

function queryOf(pool: Pool) {
  return { query: async <Row>(text: string, values?: unknown[]) => (await pool.query(text, values)).rows as Row[] };
}
