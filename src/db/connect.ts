import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { Config } from '../support/env.js';
import { DatabaseUnavailableError, UsageError, messageOf } from '../support/errors.js';
import { redactConnectionString, redactSecrets, type Logger } from '../support/log.js';
import { startEmbeddedPostgres } from './embedded.js';
import { poolConfig } from './pool.js';
import { errorCode } from '../support/pg-errors.js';

export interface Database {
  url: string;
  embedded: boolean;
  /** Stops the embedded server if this process owns it; a no-op for an external database. */
  close(): Promise<void>;
}

function describe(url: string): string {
  try {
    const { hostname, port, pathname } = new URL(url);
    return `${hostname}:${port || 5432}${pathname}`;
  } catch {
    return redactConnectionString(url);
  }
}

/**
 * The driver's client for a connection string it can parse. One that it cannot (a port that is
 * not a number, a bracket left open, a raw '#' or '/' in a password) is bad input, exit 2: no
 * attempt to connect would help.
 */
function clientFor(url: string): pg.Client {
  try {
    return new pg.Client({ ...poolConfig(url), connectionTimeoutMillis: 5000 });
  } catch (error) {
    throw new UsageError(
      `the database connection string is malformed (${redactSecrets(messageOf(error))}): check the port, and percent-encode special characters of the user name and password`,
      { cause: error },
    );
  }
}

/**
 * Fails fast, in one line, when the database can't be reached or logged in to: a closed port
 * answers at once; a host that never answers is given 5 seconds.
 */
export async function assertReachable(url: string): Promise<void> {
  const client = clientFor(url);
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (error) {
    const reason = error instanceof Error ? error.message || errorCode(error) : String(error);
    throw new DatabaseUnavailableError(`cannot reach the database at ${describe(url)}: ${redactSecrets(String(reason))}`, {
      cause: error,
    });
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function reachable(url: string, log: Logger, wait: { seconds: number; signal: AbortSignal } | null): Promise<void> {
  const deadline = performance.now() + (wait?.seconds ?? 0) * 1000;
  for (let delayMs = 250; ; delayMs = Math.min(delayMs * 2, 5000)) {
    try {
      return await assertReachable(url);
    } catch (error) {
      if (!wait || !(error instanceof DatabaseUnavailableError) || performance.now() + delayMs > deadline || wait.signal.aborted) throw error;
      if (delayMs === 250) log.warn({ waitSeconds: wait.seconds }, `${error.message}; trying again for up to ${wait.seconds} s`);
      await sleep(delayMs, undefined, { signal: wait.signal }).catch(() => undefined);
    }
  }
}

/**
 * The configured database, or the embedded one in `.cutover/` when none is configured. With
 * `waitSeconds`, a database that can't be reached is tried again (backoff, one log line) for
 * that long before the one-line failure: a worker restarted during a Postgres restart waits it
 * out, as a running one does, while a wrong address still fails within a bounded time.
 */
export async function openDatabase(config: Config, log: Logger, wait: { seconds: number; signal: AbortSignal } | null = null): Promise<Database> {
  if (config.databaseUrl) {
    await reachable(config.databaseUrl, log, wait);
    return { url: config.databaseUrl, embedded: false, close: async () => undefined };
  }
  const server = await startEmbeddedPostgres({ dataDir: config.dataDir, log });
  return { url: server.url, embedded: true, close: () => server.stop() };
}

