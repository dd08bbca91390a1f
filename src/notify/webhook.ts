import { UsageError, messageOf } from '../support/errors.js';
import { errorCode } from '../support/pg-errors.js';

/**
 * The HTTP side of notifications: one POST per notification, in cutover's JSON or in Slack's
 * incoming-webhook shape. What to send and when to retry is src/notify/notify.ts's; this module
 * only says what happened to one request.
 *
 * A webhook URL is a credential: Slack's (and Discord's, Teams', most others') carries its token
 * in the path, some in the query. Nothing here returns or logs more of it than its host.
 */

export type WebhookFormat = 'json' | 'slack';

export interface Webhook {
  url: URL;
  format: WebhookFormat;
  /** One request's limit, connecting included. @defaultValue 10000 */
  timeoutMs?: number;
}

export type Severity = 'critical' | 'warning' | 'info';

/** What the receiver is told: cutover's JSON body as it is, and the source of the Slack text. */
export interface Notification {
  /** Stable across retries and processes (`event:42`): a receiver can drop a repeat by it. */
  id: string;
  /** The audit action (`plan.aborted`, `flag.kill`), or `reconcile.findings`, `dlq.threshold`. */
  kind: string;
  severity: Severity;
  jobType: string | null;
  /** When it happened (ISO 8601), not when it was delivered. */
  at: string;
  /** One line a person reads first. */
  text: string;
  actor: string | null;
  reason: string | null;
  /** The event's own fields (flag before/after, counts), for receivers that act on them. */
  details: Record<string, unknown>;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * A webhook URL from the environment or the config, checked: http(s) only. A rejected value is
 * never echoed, not even in part beyond its scheme, since it may be the secret itself.
 */
export function parseWebhookUrl(value: string, source: string): URL {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw new UsageError(`${source} must be an http:// or https:// URL, got something else (not shown: a webhook URL is a secret)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new UsageError(`${source} must be an http:// or https:// URL, got a ${url.protocol}// URL (the rest is not shown)`);
  }
  return url;
}

/** Slack's own host gets Slack's body unless told otherwise; anything else cutover's JSON. */
export function defaultFormat(url: URL): WebhookFormat {
  return url.hostname === 'hooks.slack.com' ? 'slack' : 'json';
}

/** What a log line or an error may say about the webhook: its host (and port), never its path or query. */
export function webhookHost(webhook: Pick<Webhook, 'url'>): string {
  return webhook.url.host;
}

/** Slack's mrkdwn reserves these three; everything else in the text is shown as written. */
function slackEscape(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
}

const SLACK_ICON: Record<Severity, string> = { critical: ':rotating_light:', warning: ':warning:', info: ':information_source:' };

/** The request body: cutover's JSON, or `{ text }` (Slack, and the many receivers that accept its shape). */
export function webhookBody(notification: Notification, format: WebhookFormat): Record<string, unknown> {
  if (format === 'json') return { source: 'cutover', ...notification };
  const context = [notification.actor ? `by ${notification.actor}` : '', notification.at].filter(Boolean).join(' · ');
  return { text: `${SLACK_ICON[notification.severity]} *cutover*: ${slackEscape(notification.text)}\n_${slackEscape(context)}_` };
}

export type WebhookResult =
  | { ok: true; status: number; ms: number }
  | {
      ok: false;
      /** False when asking again cannot help (the receiver refused the request itself: 400, 403, 404). */
      retry: boolean;
      status?: number;
      /** Safe to log and store: says what failed, never the URL's path or query. */
      error: string;
      /** The receiver's Retry-After, if it sent one. */
      retryAfterMs?: number;
      ms: number;
    };

/** 408, 425 and 429 are the receiver asking for patience; any other 4xx is about the request. */
const RETRYABLE_CLIENT_ERRORS = new Set([408, 425, 429]);

/**
 * Error text a log may show: the error's message and its cause's code, with every occurrence of
 * the URL, its path and its query replaced (undici quotes the URL in some of its errors).
 */
export function describeFailure(error: unknown, webhook: Pick<Webhook, 'url'>): string {
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  const code = errorCode(cause);
  const timedOut = error instanceof DOMException && error.name === 'TimeoutError';
  let text = timedOut ? 'no answer before the timeout' : `${messageOf(error)}${code ? ` (${code})` : typeof cause?.message === 'string' ? ` (${cause.message})` : ''}`;
  const { href, pathname, search } = webhook.url;
  for (const secret of [href, `${pathname}${search}`, pathname, search]) {
    if (secret.length > 1) text = text.replaceAll(secret, '/[hidden]');
  }
  return text;
}

function retryAfter(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

export interface PostOptions {
  /** Stops the request (the loop is stopping). */
  signal?: AbortSignal;
  /** @defaultValue globalThis.fetch */
  fetch?: typeof fetch;
  /** Overrides the webhook's own timeout (a bounded drain has less time left). */
  timeoutMs?: number;
}

/**
 * Posts one notification. Never throws: a refused connection, a timeout, a 5xx are results
 * (retry: true), so that the caller's loop decides about backing off. Any 2xx is delivered.
 * The notification id goes in a header too, for receivers that deduplicate by header.
 */
export async function postNotification(webhook: Webhook, notification: Notification, options: PostOptions = {}): Promise<WebhookResult> {
  const started = performance.now();
  const ms = () => Math.round(performance.now() - started);
  const timeout = AbortSignal.timeout(options.timeoutMs ?? webhook.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  try {
    const response = await (options.fetch ?? fetch)(webhook.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'cutover', 'x-cutover-notification': notification.id },
      body: JSON.stringify(webhookBody(notification, webhook.format)),
      signal: options.signal ? AbortSignal.any([timeout, options.signal]) : timeout,
      // A redirect is not followed: the body would go wherever it points. 3xx is reported, not retried.
      redirect: 'manual',
    });
    // The body is not read for anything but to free the connection.
    await response.arrayBuffer().catch(() => undefined);
    if (response.ok) return { ok: true, status: response.status, ms: ms() };
    const later = retryAfter(response.headers.get('retry-after'));
    return {
      ok: false,
      retry: response.status >= 500 || RETRYABLE_CLIENT_ERRORS.has(response.status),
      status: response.status,
      error: `HTTP ${response.status}${response.statusText ? ` ${response.statusText}` : ''}`,
      ...(later === undefined ? {} : { retryAfterMs: later }),
      ms: ms(),
    };
  } catch (error) {
    return { ok: false, retry: true, error: describeFailure(error, webhook), ms: ms() };
  }
}
