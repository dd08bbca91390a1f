import { setTimeout as sleep } from 'node:timers/promises';
import type { NotificationsConfig } from '../config/file.js';
import type { Pool } from '../db/pool.js';
import { backoffMs, OutageLog } from '../db/outage.js';
import { isPermissionDenied, pgbossInstalled } from '../state/schema-check.js';
import { withTransaction } from '../db/transaction.js';
import { UsageError } from '../support/errors.js';
import { redactSecrets, type Logger } from '../support/log.js';
import { notificationOf, reconcileNotification, deadLetterNotification, NOTIFIED_ACTIONS, type AuditRow, type ReconcileRow } from './text.js';
import * as sql from './notify.sql.js';
import { defaultFormat, parseWebhookUrl, postNotification, webhookHost, type Notification, type Webhook, type WebhookFormat } from './webhook.js';

/**
 * Notifications, the outbox way: the audit log is the outbox. Every event worth telling about
 * is already a row of "RolloutEvent" (or "ReconcileRun") committed with the change it records,
 * so an operation never waits for, nor fails with, a webhook. A separate loop, in any number of
 * processes (`cutover notify`, `plan run`, workers), copies new rows into "NotificationDelivery"
 * and delivers each from there: claimed with SKIP LOCKED and a lease, retried with backoff,
 * every attempt recorded and logged. Delivery is once per notification while every loop's
 * request ends within its lease; a loop that dies after the receiver accepted and before it
 * recorded the delivery makes the next one send it again (the body's `id` tells the repeat).
 */

export interface NotifySettings {
  webhook: Webhook;
  /** Dead letters of one type that make a notification, and every further multiple. @defaultValue 10 */
  dlqThreshold: number;
}

const DEFAULT_DLQ_THRESHOLD = 10;

function positiveInteger(name: string, value: string): number {
  const parsed = Number(value.trim());
  if (!/^\d+$/.test(value.trim()) || parsed < 1) throw new UsageError(`${name} must be a whole number from 1, got '${redactSecrets(value)}'`);
  return parsed;
}

/**
 * The webhook from CUTOVER_WEBHOOK_URL (else the config's `notifications.webhook`), with its
 * format and threshold (variables first, then the config); undefined when none is configured.
 */
export function notifySettings(env: NodeJS.ProcessEnv, file?: NotificationsConfig): NotifySettings | undefined {
  const fromEnv = env.CUTOVER_WEBHOOK_URL?.trim();
  const raw = fromEnv || file?.webhook?.trim();
  if (!raw) return undefined;
  const url = parseWebhookUrl(raw, fromEnv ? 'CUTOVER_WEBHOOK_URL' : 'notifications.webhook (cutover.config)');
  const format = env.CUTOVER_WEBHOOK_FORMAT?.trim() || file?.format || defaultFormat(url);
  if (format !== 'json' && format !== 'slack') throw new UsageError(`CUTOVER_WEBHOOK_FORMAT must be 'json' or 'slack', got '${redactSecrets(format)}'`);
  const threshold = env.CUTOVER_WEBHOOK_DLQ_THRESHOLD?.trim();
  return {
    webhook: { url, format: format satisfies WebhookFormat },
    dlqThreshold: threshold ? positiveInteger('CUTOVER_WEBHOOK_DLQ_THRESHOLD', threshold) : (file?.dlqThreshold ?? DEFAULT_DLQ_THRESHOLD),
  };
}

export interface NotifierOptions {
  pool: Pool;
  webhook: Webhook;
  log: Logger;
  /** @defaultValue 10 */
  dlqThreshold?: number;
  /** How often the loop looks for new events. @defaultValue 1000 */
  pollMs?: number;
  /** How often dead letter queues are counted. @defaultValue 15000 */
  deadLetterEveryMs?: number;
  /** The first retry's delay; each further one doubles, up to `retryMaxMs`. @defaultValue 1000 */
  retryBaseMs?: number;
  /** @defaultValue 300000 (5 minutes) */
  retryMaxMs?: number;
  /** Attempts before a notification is given up (logged as an error). @defaultValue 20 */
  maxAttempts?: number;
  /** Events older than this when the loop first runs on a database are not delivered. @defaultValue 3600 */
  catchUpSeconds?: number;
  fetch?: typeof fetch;
}

export interface NotifyCounts {
  /** Notifications copied from the audit log, reconcile runs and dead letter queues. */
  collected: number;
  delivered: number;
  /** Attempts that failed and will be retried. */
  failed: number;
  gaveUp: number;
}

const ROWS_PER_READ = 500;
/** Counting a dead letter queue past this changes nothing but the cost. */
const DEAD_LETTER_COUNT_CAP = 100_000;
/** Deliveries per round, so a long backlog does not keep the loop from noticing it should stop. */
const DELIVERIES_PER_ROUND = 50;
/** Beyond the request's own timeout, the lease covers recording the outcome. */
const LEASE_MARGIN_SECONDS = 30;
const DEFAULT_TIMEOUT_MS = 10_000;

const zero = (): NotifyCounts => ({ collected: 0, delivered: 0, failed: 0, gaveUp: 0 });
function add(total: NotifyCounts, more: NotifyCounts): void {
  total.collected += more.collected;
  total.delivered += more.delivered;
  total.failed += more.failed;
  total.gaveUp += more.gaveUp;
}

/** How often a loop prunes notifications done a week ago (each prune is bounded). */
const PRUNE_EVERY_MS = 3_600_000;

interface Claimed {
  id: string;
  key: string;
  kind: string;
  notification: Notification;
  attempts: number;
}

/** The delivery loop of one process. Its state is in the database; what it keeps is only pacing. */
export class Notifier {
  /** A failed attempt pauses this process's deliveries until its retry is due: a receiver that is down gets one probe per backoff, not one per notification. */
  private pausedUntil = 0;
  private cursorsReady = false;
  private deadLetters: 'check' | 'off' = 'check';
  private nextDeadLetterCheck = 0;
  private nextPrune = 0;
  private readonly host: string;

  constructor(private readonly options: NotifierOptions) {
    this.host = webhookHost(options.webhook);
  }

  /**
   * One round: copy what is new, then deliver what is due (until `deadline`, if given). `stop`
   * ends the round before its next delivery; `cancel` also abandons the request in flight.
   */
  async runOnce(options: { stop?: AbortSignal; cancel?: AbortSignal; deadline?: number } = {}): Promise<NotifyCounts> {
    const counts = zero();
    counts.collected = await this.collect();
    for (let round = 0; round < DELIVERIES_PER_ROUND && Date.now() >= this.pausedUntil && !options.stop?.aborted && !options.cancel?.aborted; round += 1) {
      const left = options.deadline === undefined ? undefined : options.deadline - Date.now();
      // Too little time left for a request: leave it to the next loop rather than count a doomed attempt.
      if (left !== undefined && left < 100) break;
      const outcome = await this.deliverOne(options.cancel, left);
      if (outcome === 'none') break;
      if (outcome === 'delivered') counts.delivered += 1;
      else if (outcome === 'failed') counts.failed += 1;
      else if (outcome === 'gave-up') counts.gaveUp += 1;
    }
    return counts;
  }

  /**
   * Rounds until `signal`: never throws, backs off while the database is away. A request in
   * flight when `signal` fires is let finish (its answer recorded, so it is not sent twice),
   * unless `cancel` fires too.
   */
  async run(signal: AbortSignal, cancel?: AbortSignal): Promise<void> {
    const pollMs = this.options.pollMs ?? 1000;
    const outage = new OutageLog(this.options.log, 'notifications');
    let failures = 0;
    this.options.log.info({ webhook: this.host, format: this.options.webhook.format }, 'notifications: delivering to the webhook');
    while (!signal.aborted) {
      try {
        await this.runOnce({ stop: signal, ...(cancel ? { cancel } : {}) });
        outage.recovered();
        failures = 0;
      } catch (error) {
        if (signal.aborted) break;
        failures += 1;
        outage.failed(error, 'the delivery loop failed; retrying with backoff');
      }
      await sleep(failures ? backoffMs(pollMs, failures) : pollMs, undefined, { signal }).catch(() => undefined);
    }
  }

  /**
   * Rounds until nothing is due or `timeoutMs` has passed: for the end of a command, so that
   * what it just did goes out before the process exits. Never throws; returns what it did and
   * how many notifications are still to be delivered (by this or another loop, later; null
   * when the database could not say).
   */
  async drain(timeoutMs: number, signal?: AbortSignal): Promise<NotifyCounts & { pending: number | null }> {
    const deadline = Date.now() + timeoutMs;
    const total = zero();
    // Dead letters are counted now, whenever the loop last did: the drain is the last look.
    this.nextDeadLetterCheck = 0;
    try {
      while (Date.now() < deadline && !signal?.aborted) {
        const counts = await this.runOnce({ deadline, ...(signal ? { cancel: signal } : {}) });
        add(total, counts);
        if (counts.delivered === 0 || counts.failed > 0 || Date.now() < this.pausedUntil) break;
      }
      const { rows } = await this.options.pool.query<{ n: number }>(sql.countPending);
      return { ...total, pending: rows[0]?.n ?? 0 };
    } catch (error) {
      this.options.log.warn({ err: error }, 'notifications: could not deliver what is pending; a running delivery loop will');
      return { ...total, pending: null };
    }
  }

  private async collect(): Promise<number> {
    const { pool } = this.options;
    if (!this.cursorsReady) {
      for (const source of sql.SOURCES) await pool.query(sql.createCursor(source), [source.name, this.options.catchUpSeconds ?? 3600]);
      this.cursorsReady = true;
    }
    if (Date.now() >= this.nextPrune) {
      this.nextPrune = Date.now() + PRUNE_EVERY_MS;
      await pool.query(sql.pruneDone);
    }
    let collected = 0;
    for (const source of sql.SOURCES) collected += await this.collectSource(source);
    return collected + (await this.collectDeadLetters());
  }

  /**
   * Copies a source's new rows. Ids are taken in one order and committed in another: a row
   * with a lower id can become visible after a higher one was read. So the cursor moves only
   * past rows that can no longer appear: each read leaves a checkpoint (the highest id it
   * covered, and the first transaction id not yet started then); once every transaction older
   * than that has ended (the snapshot's xmin passed it), every row up to the checkpoint is
   * visible, was copied by a read since, and the cursor moves there. Until then rows past the
   * cursor are read again, and those already copied are skipped.
   */
  private async collectSource(source: sql.SourceTable): Promise<number> {
    return withTransaction(this.options.pool, async (client) => {
      const { rows: cursors } = await client.query<{ position: string; seenId: string | null; seenXmax: string | null }>(sql.lockCursor, [source.name]);
      const cursor = cursors[0];
      // Another process is reading this source now; it copies what this one would have.
      if (!cursor) return 0;
      const xmin = BigInt((await client.query<{ xid: string }>(sql.snapshotXmin)).rows[0]!.xid);
      const params: unknown[] = [cursor.position, ROWS_PER_READ, ...(source.usesActions ? [NOTIFIED_ACTIONS] : [])];
      const { rows } = await client.query<{ top: string | null; rows: (AuditRow | ReconcileRow)[] }>(sql.unreadRows(source), params);
      const xmax = (await client.query<{ xid: string }>(sql.snapshotXmax)).rows[0]!.xid;
      const found = rows[0]?.rows ?? [];
      const position = BigInt(cursor.position);
      const last = found.at(-1);
      const covered = found.length === ROWS_PER_READ && last ? BigInt(last.id) : BigInt(rows[0]?.top ?? position);
      const notifications = found.flatMap((row) => {
        const notification = source.name === 'RolloutEvent' ? notificationOf(row as AuditRow) : reconcileNotification(row as ReconcileRow);
        return notification ? [notification] : [];
      });
      await this.insert(client, notifications);
      let next = { position, seenId: cursor.seenId, seenXmax: cursor.seenXmax };
      const settled = cursor.seenXmax !== null && xmin >= BigInt(cursor.seenXmax);
      if (cursor.seenXmax === null || settled) {
        const reached = settled && cursor.seenId !== null ? (BigInt(cursor.seenId) < covered ? BigInt(cursor.seenId) : covered) : position;
        next = { position: reached > position ? reached : position, seenId: String(covered > position ? covered : position), seenXmax: xmax };
      }
      await client.query(sql.saveCursor, [source.name, String(next.position), next.seenId, next.seenXmax]);
      return notifications.length;
    });
  }

  private async insert(client: { query: Pool['query'] }, notifications: readonly Notification[]): Promise<void> {
    if (!notifications.length) return;
    await client.query(sql.insertDeliveries, [
      notifications.map((n) => n.id),
      notifications.map((n) => n.kind),
      notifications.map((n) => n.jobType),
      notifications.map((n) => n.at),
      notifications.map((n) => JSON.stringify(n)),
    ]);
  }

  /**
   * A dead letter queue reaching the threshold (and each further multiple of it) is one
   * notification; falling below re-arms it. Where this role may not read pg-boss's tables (the
   * legacy runner's), processes that may (pg-boss workers, operators) do it.
   */
  private async collectDeadLetters(): Promise<number> {
    const { pool } = this.options;
    if (this.deadLetters === 'off' || Date.now() < this.nextDeadLetterCheck) return 0;
    this.nextDeadLetterCheck = Date.now() + (this.options.deadLetterEveryMs ?? 15_000);
    const threshold = this.options.dlqThreshold ?? DEFAULT_DLQ_THRESHOLD;
    let counts: { name: string; count: number }[];
    try {
      if (!(await pgbossInstalled(pool))) return 0;
      counts = (await pool.query<{ name: string; count: number }>(sql.deadLetterCounts, [DEAD_LETTER_COUNT_CAP])).rows;
    } catch (error) {
      if (!isPermissionDenied(error)) throw error;
      this.deadLetters = 'off';
      this.options.log.info('notifications: this role may not read pg-boss\'s queues; dead letters are counted by the loops of roles that may');
      return 0;
    }
    const notified = new Map((await pool.query<{ source: string; position: number }>(sql.deadLetterCursors)).rows.map((row) => [row.source, row.position]));
    let collected = 0;
    for (const { name, count } of counts) {
      const level = Math.floor(count / threshold) * threshold;
      if (level === (notified.get(`dlq:${name}`) ?? 0)) continue;
      collected += await withTransaction(pool, async (client) => {
        const source = `dlq:${name}`;
        await client.query(sql.createDeadLetterCursor, [source]);
        const cursor = (await client.query<{ position: string }>(sql.lockCursor, [source])).rows[0];
        if (!cursor || Number(cursor.position) === level) return 0;
        const rising = level > Number(cursor.position);
        if (rising) await this.insert(client, [deadLetterNotification(name, count, threshold, new Date())]);
        await client.query(sql.saveCursor, [source, String(level), null, null]);
        return rising ? 1 : 0;
      });
    }
    return collected;
  }

  private async deliverOne(cancel: AbortSignal | undefined, leftMs: number | undefined): Promise<'none' | 'delivered' | 'failed' | 'gave-up' | 'released'> {
    const { pool, webhook, log } = this.options;
    const timeoutMs = Math.min(webhook.timeoutMs ?? DEFAULT_TIMEOUT_MS, leftMs ?? Number.POSITIVE_INFINITY);
    const lease = Math.ceil(timeoutMs / 1000) + LEASE_MARGIN_SECONDS;
    const claimed = (await pool.query<Claimed>(sql.claimDelivery, [lease])).rows[0];
    if (!claimed) return 'none';
    const result = await postNotification(webhook, claimed.notification, { timeoutMs, ...(cancel ? { signal: cancel } : {}), ...(this.options.fetch ? { fetch: this.options.fetch } : {}) });
    const about = { webhook: this.host, notification: claimed.key, kind: claimed.kind, attempt: claimed.attempts };
    if (result.ok) {
      await pool.query(sql.markDelivered, [claimed.id]);
      log.info({ ...about, status: result.status, ms: result.ms }, 'notification delivered');
      return 'delivered';
    }
    if (cancel?.aborted) {
      // Abandoned, not refused: the next loop sends it again (the receiver may have it already: the id tells).
      await pool.query(sql.releaseClaim, [claimed.id]);
      return 'released';
    }
    const giveUp = !result.retry || claimed.attempts >= (this.options.maxAttempts ?? 20);
    const maxMs = this.options.retryMaxMs ?? 300_000;
    const delayMs = Math.min(maxMs, Math.max(backoffMs(this.options.retryBaseMs ?? 1000, claimed.attempts, maxMs), result.retryAfterMs ?? 0));
    await pool.query(sql.markFailed, [claimed.id, result.error, delayMs / 1000, giveUp]);
    const failure = { ...about, error: result.error, ...(result.status ? { status: result.status } : {}), ms: result.ms };
    if (giveUp) {
      log.error({ ...failure, permanent: !result.retry }, result.retry ? 'notification given up after its last attempt' : 'notification refused by the receiver; not retried');
      return 'gave-up';
    }
    this.pausedUntil = Date.now() + delayMs;
    log.warn({ ...failure, retryInMs: delayMs }, 'notification not delivered; retrying with backoff');
    return 'failed';
  }
}

export interface RunningNotifier {
  /**
   * Stops the loop, then delivers what is due (what the command's last moments created): all
   * in at most `flushMs`, the request in flight included. Never throws. @defaultValue flushMs 3000
   */
  stop(options?: { flushMs?: number }): Promise<void>;
}

/** A delivery loop beside a long-running command (a plan controller, a worker). */
export function startNotifier(options: NotifierOptions): RunningNotifier {
  const notifier = new Notifier(options);
  const stop = new AbortController();
  const cancel = new AbortController();
  const running = notifier.run(stop.signal, cancel.signal);
  return {
    async stop({ flushMs = 3000 } = {}) {
      const deadline = Date.now() + flushMs;
      stop.abort();
      const grace = setTimeout(() => cancel.abort(), flushMs);
      await running;
      clearTimeout(grace);
      const left = deadline - Date.now();
      if (left > 0) await notifier.drain(left);
    },
  };
}
