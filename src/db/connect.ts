import pg from 'pg';
import type { Config } from '../config.js';
import { DatabaseUnavailableError } from '../errors.js';
import { redactConnectionString, redactSecrets, type Logger } from '../log.js';
import { startEmbeddedPostgres } from './embedded.js';
import { poolConfig } from './pool.js';

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

/** Fails fast, in one line, when the database can't be reached or logged in to. */
export async function assertReachable(url: string): Promise<void> {
  const client = new pg.Client({ ...poolConfig(url), connectionTimeoutMillis: 5000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
  } catch (error) {
    const reason = error instanceof Error ? error.message || (error as NodeJS.ErrnoException).code : String(error);
    throw new DatabaseUnavailableError(`cannot reach the database at ${describe(url)}: ${redactSecrets(String(reason))}`, {
      cause: error,
    });
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The configured database, or the embedded one in `.cutover/` when none is configured. */
export async function openDatabase(config: Config, log: Logger): Promise<Database> {
  if (config.databaseUrl) {
    await assertReachable(config.databaseUrl);
    return { url: config.databaseUrl, embedded: false, close: async () => undefined };
  }
  const server = await startEmbeddedPostgres({ dataDir: config.dataDir, log });
  return { url: server.url, embedded: true, close: () => server.stop() };
}

