import type { Queryable } from '../db/pool.js';
import { UsageError } from '../support/errors.js';
import type { Engine } from '../jobs/define.js';
import type { Logger } from '../support/log.js';
import { typeSql, type LegacyTable } from '../table/table.js';

/**
 * How often a worker prints its one-line summary, in milliseconds; 0 turns it off. Unset: every
 * DEFAULT_SUMMARY_MS on a terminal, never when stderr is piped (a log collector wants the JSON
 * log lines alone). Set, it is printed piped too: that is how a script asks for it.
 */
export const SUMMARY_ENV = 'CUTOVER_WORKER_SUMMARY_MS';
export const DEFAULT_SUMMARY_MS = 10_000;
const MAX_SUMMARY_MS = 86_400_000;

/** The summary's interval in ms, or undefined for none; a bad value is a UsageError naming the variable. */
export function summaryInterval(env: NodeJS.ProcessEnv = process.env, terminal = process.stderr.isTTY === true): number | undefined {
  const raw = env[SUMMARY_ENV];
  if (raw === undefined || raw.trim() === '') return terminal ? DEFAULT_SUMMARY_MS : undefined;
  const value = raw.trim();
  if (!/^\d+$/.test(value) || Number(value) > MAX_SUMMARY_MS) {
    throw new UsageError(`${SUMMARY_ENV} must be an integer of milliseconds from 0 (off) to ${MAX_SUMMARY_MS}, got '${raw}'`);
  }
  return Number(value) === 0 ? undefined : Number(value);
}

export interface TypeActivity {
  /** Rows this worker completed, since it started. */
  done: number;
  /** Rows this worker marked FAILED, since it started (a legacy attempt retried as a new row counts; a pg-boss attempt pg-boss retries does not, as the row never says FAILED). */
  failed: number;
  /** Rows this worker runs now. */
  running: number;
}

export type Activity = ReadonlyMap<string, TypeActivity>;

/**
 * One worker's outcomes per job type, read from the rows it owns (`workerId`, written by both
 * engines on the row they run). Neither engine reports outcomes as they happen to anything but
 * its log, and the legacy one runs jobs in child processes, so the rows are the one source that
 * says the same thing for both. Counts are cumulative: the summary prints differences, so a
 * row whose commit lands just after one read is counted by the next one, never lost or twice.
 * The query reads the worker's rows of one engine by status; it runs only while a summary is
 * shown, once per interval.
 */
export async function workerActivity(db: Queryable, table: LegacyTable, workerId: string, engine: Engine): Promise<Activity> {
  const { col, status } = table;
  const { rows } = await db.query<{ type: string; done: string; failed: string; running: string }>(
    `SELECT ${typeSql(table)} AS type,
            count(*) FILTER (WHERE j.${col.status} = ${status.completed}) AS done,
            count(*) FILTER (WHERE j.${col.status} = ${status.failed}) AS failed,
            count(*) FILTER (WHERE j.${col.status} = ${status.running}) AS running
       FROM ${table.ref} j
      WHERE j.engine = $2 AND j."workerId" = $1 AND j.${col.status} IN (${status.completed}, ${status.failed}, ${status.running})
      GROUP BY 1`,
    [workerId, engine],
  );
  return new Map(rows.map((row) => [row.type, { done: Number(row.done), failed: Number(row.failed), running: Number(row.running) }]));
}

function seconds(ms: number): string {
  return ms < 10_000 ? `${(Math.round(ms / 100) / 10).toString()}s` : `${Math.round(ms / 1000)}s`;
}

function clock(at: Date): string {
  return at.toTimeString().slice(0, 8);
}

/**
 * The line for what happened between two reads: per type with anything done, failed or
 * running, `type N done, N failed, N running`; types with nothing are left out. Undefined when
 * nothing happened at all (the caller says "idle" once).
 */
export function summaryLine(before: Activity, after: Activity, elapsedMs: number, at: Date): string | undefined {
  const parts: string[] = [];
  for (const type of [...after.keys()].sort()) {
    const now = after.get(type)!;
    const then = before.get(type) ?? { done: 0, failed: 0, running: 0 };
    // Cumulative counts can drop (a dead letter sent back makes its FAILED row PENDING again): no negative news.
    const done = Math.max(0, now.done - then.done);
    const failed = Math.max(0, now.failed - then.failed);
    if (done || failed || now.running) parts.push(`${type} ${done} done, ${failed} failed, ${now.running} running`);
  }
  return parts.length ? `${clock(at)} last ${seconds(elapsedMs)}: ${parts.join('; ')}` : undefined;
}

export interface WorkerSummaryOptions {
  read: () => Promise<Activity>;
  write: (line: string) => void;
  intervalMs: number;
  log: Logger;
  /** @defaultValue Date.now */
  now?: () => number;
}

/**
 * The periodic one-line summary of a worker, which otherwise prints nothing for a job that
 * succeeds: a line per interval with activity, one `idle` line when activity stops, and a last
 * line on stop for what the final interval did.
 */
export class WorkerSummary {
  private last: Activity = new Map();
  private lastAt: number;
  private idle = true;
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;
  private readonly now: () => number;

  constructor(private readonly options: WorkerSummaryOptions) {
    this.now = options.now ?? Date.now;
    this.lastAt = this.now();
  }

  start(): void {
    // unref: the worker's own loop keeps the process alive, not its summary.
    this.timer = setInterval(() => this.tick(), this.options.intervalMs).unref();
  }

  /** Reads once and prints what happened since the last line, if anything did. */
  async runOnce(): Promise<void> {
    let activity: Activity;
    try {
      activity = await this.options.read();
    } catch (error) {
      // The engines log a database outage themselves; the summary just skips the interval.
      this.options.log.debug({ err: error }, 'worker summary: could not read activity');
      return;
    }
    const at = this.now();
    const line = summaryLine(this.last, activity, at - this.lastAt, new Date(at));
    if (line) this.options.write(line);
    else if (!this.idle) this.options.write(`${clock(new Date(at))} idle: nothing done, failed or running in the last ${seconds(at - this.lastAt)}`);
    this.idle = line === undefined;
    this.last = activity;
    this.lastAt = at;
  }

  /** Stops the timer and prints the final interval's line. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.reading;
    await this.runOnce();
  }

  /** Stops the timer without a last line (the worker failed; its error is what matters). */
  cancel(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    // A slow read (a busy database) skips ticks rather than queueing reads behind it.
    if (this.reading) return;
    this.reading = this.runOnce().finally(() => (this.reading = undefined));
  }
}

/** Where a worker's summary lines go unless told otherwise: stderr, beside the logs. */
export const summaryToStderr = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

/**
 * Runs `run` with a summary of `read` written every `intervalMs` (none when undefined), and its
 * last line once `run` has returned.
 */
export async function withWorkerSummary<T>(
  intervalMs: number | undefined,
  read: () => Promise<Activity>,
  log: Logger,
  run: () => Promise<T>,
  write: (line: string) => void = summaryToStderr,
): Promise<T> {
  if (intervalMs === undefined) return run();
  const summary = new WorkerSummary({ read, intervalMs, log, write });
  summary.start();
  let result: T;
  try {
    result = await run();
  } catch (error) {
    summary.cancel();
    throw error;
  }
  await summary.stop();
  return result;
}
