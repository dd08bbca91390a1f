import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import { UsageError } from '../support/errors.js';

/**
 * Who may talk to the dashboard and who may write through it. Reading needs only network
 * access (it binds 127.0.0.1 unless told otherwise); writing needs the token printed at start
 * (or CUTOVER_DASHBOARD_TOKEN) in an `Authorization: Bearer` header, a CSRF token from the
 * session, and a same-origin request.
 */

/** Tokens shorter than this could be guessed by trying: refuse them rather than accept a weak one. */
const MIN_TOKEN_LENGTH = 16;

/** The write token: the operator's own, checked, or a fresh random one to print. */
export function writeToken(fromEnvironment: string | undefined): { token: string; generated: boolean } {
  if (fromEnvironment === undefined || fromEnvironment === '') return { token: randomBytes(24).toString('base64url'), generated: true };
  if (fromEnvironment.length < MIN_TOKEN_LENGTH || /\s/.test(fromEnvironment)) {
    throw new UsageError(`CUTOVER_DASHBOARD_TOKEN must be at least ${MIN_TOKEN_LENGTH} characters without spaces (it guards writes from the dashboard)`);
  }
  return { token: fromEnvironment, generated: false };
}

/** Compares in constant time (digests first, so lengths leak nothing either). */
export function tokenMatches(expected: string, header: string | undefined): boolean {
  const match = /^Bearer (\S+)$/.exec(header ?? '');
  if (!match) return false;
  const digest = (text: string) => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(expected), digest(match[1]!));
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

/**
 * The Host headers a loopback-bound dashboard answers: any other means a page on some other
 * site resolved its own name to 127.0.0.1 (DNS rebinding) to read the dashboard. Bound to
 * another address, the operator chose the names it is reached by, and every Host is accepted.
 */
export function allowedHosts(host: string, port: number): ReadonlySet<string> | null {
  if (!isLoopback(host)) return null;
  return new Set(['127.0.0.1', 'localhost', '[::1]', isIP(host) === 6 ? `[${host}]` : host].map((name) => `${name}:${port}`));
}

/** The origin a browser sends with a write from the page itself, given the Host it used. */
export function sameOrigin(origin: string | undefined, hostHeader: string | undefined): boolean {
  // Browsers send Origin with every POST; a client without one is not a browser page of another site.
  if (origin === undefined) return true;
  return hostHeader !== undefined && origin === `http://${hostHeader}`;
}

/** A URL the page may link to: http(s) only, so it can never run script. */
export function linkUrl(value: string): string {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new UsageError(`--pgboss-dashboard must be an http(s) URL, got '${value}'`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError(`--pgboss-dashboard must be an http(s) URL, got '${value}'`);
  if (parsed.username || parsed.password) throw new UsageError('--pgboss-dashboard must not carry credentials: the page shows it to whoever opens it');
  return parsed.toString().replace(/\/$/, '');
}
