import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../support/log.js';
import { messageOf } from '../support/errors.js';
import { errorCode, sqlState, SQLSTATE } from '../support/pg-errors.js';

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH']);
/** SQLSTATEs a server sends while it shuts down, crashes or starts up. */
const SERVER_GOING_AWAY = new Set<string>([SQLSTATE.adminShutdown, SQLSTATE.crashShutdown, SQLSTATE.cannotConnectNow]);
const CONNECTION_LOST = /connection terminated|terminating connection|connection error|server closed the connection|the database system is (starting up|shutting down|in recovery mode)/i;

/** True when the error says the database could not be reached, not that a statement was wrong. */
export function isConnectionError(error: unknown): boolean {
  const code = errorCode(error);
  if (code !== undefined && NETWORK_CODES.has(code)) return true;
  const state = sqlState(error);
  if (state !== undefined && (state.startsWith(SQLSTATE.connectionExceptionClass) || SERVER_GOING_AWAY.has(state))) return true;
  return CONNECTION_LOST.test(messageOf(error));
}

/**
 * One log line when the database goes away and one when it is back, however many polls fail
 * in between: an outage must not bury the log in a stack trace per poll. Errors that are not
 * about the connection are logged as they come. Where no success is reported (pg-boss's own
 * loops), a failure after `quietMs` without one starts a new outage.
 */
export class OutageLog {
  private since: number | undefined;
  private lastFailure = 0;
  private failures = 0;

  constructor(
    private readonly log: Logger,
    private readonly what: string,
    private readonly options: { quietMs?: number; now?: () => number } = {},
  ) {}

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  get down(): boolean {
    return this.since !== undefined;
  }

  /** Reports a failure; true when it was a lost connection (the caller should back off). */
  failed(error: unknown, context: string): boolean {
    if (!isConnectionError(error)) {
      this.log.error({ err: error }, `${this.what}: ${context}`);
      return false;
    }
    const now = this.now();
    // Quiet for long enough: that outage ended unreported; this failure starts the next one.
    if (this.since !== undefined && now - this.lastFailure > (this.options.quietMs ?? Number.POSITIVE_INFINITY)) this.since = undefined;
    this.lastFailure = now;
    this.failures += 1;
    if (this.since === undefined) {
      this.since = now;
      this.failures = 1;
      this.log.error({ error: messageOf(error) }, `${this.what}: database unreachable; retrying with backoff`);
    }
    return true;
  }

  /** Reports a success: ends an outage, if one was going on. */
  recovered(): void {
    if (this.since === undefined) return;
    this.log.warn({ seconds: Math.round((this.lastFailure - this.since) / 1000), failedAttempts: this.failures }, `${this.what}: database reachable again`);
    this.since = undefined;
    this.failures = 0;
  }
}

/** Delay before retry number `failures` (1-based) of something that polls every `baseMs`: doubling, at most `maxMs`. */
export function backoffMs(baseMs: number, failures: number, maxMs = 30_000): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(0, failures - 1), 16));
}

export interface RetryThroughOutage {
  /** Give up (rethrow the last connection error) once this time (ms since the epoch) has passed. */
  until?: number;
  /** Give up at once when aborted. */
  signal?: AbortSignal;
  /** First delay; it doubles up to 5 s. @defaultValue 100 */
  firstDelayMs?: number;
  /** Called before the first retry of a run of failures. */
  onRetry?: (error: unknown) => void;
}

/**
 * Runs `attempt` again, with backoff, for as long as it fails only because the database cannot
 * be reached; any other error, or one past `until` or the signal, is thrown. For writes whose
 * outcome is decided by a fence in the statement itself, so that running one again after an
 * unanswered try is always safe.
 */
export async function retryThroughOutage<T>(attempt: () => Promise<T>, options: RetryThroughOutage = {}): Promise<T> {
  for (let failures = 1; ; failures += 1) {
    try {
      return await attempt();
    } catch (error) {
      if (!isConnectionError(error)) throw error;
      const delay = backoffMs(options.firstDelayMs ?? 100, failures, 5000);
      if (options.signal?.aborted || (options.until !== undefined && Date.now() + delay > options.until)) throw error;
      if (failures === 1) options.onRetry?.(error);
      // An abort ends the wait; the next try's failure then throws.
      await sleep(delay, undefined, { signal: options.signal }).catch(() => undefined);
    }
  }
}
