import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { migrate } from '../../src/db/migrate.js';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';
import { createLogger } from '../../src/support/log.js';
import { resolveTestBrowser } from './browser.js';
import { repoRoot } from './cli.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A superuser connection to a server where each test file creates its own database. */
    adminDatabaseUrl: string;
    /** A database with every cutover migration applied, that test databases are copied from. */
    templateDatabase: string;
  }
}

/** Where the run's Postgres came from, for the run's output (and .ci/run's closing lines). */
type Source = 'TEST_DATABASE_URL' | 'testcontainers' | 'embedded';

interface Server {
  url: string;
  source: Source;
  stop(): Promise<void>;
}

async function provideServer(log: ReturnType<typeof createLogger>): Promise<Server> {
  if (process.env.TEST_DATABASE_URL) return { url: process.env.TEST_DATABASE_URL, source: 'TEST_DATABASE_URL', stop: async () => undefined };

  try {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const container = await new PostgreSqlContainer('postgres:16-alpine').start();
    return { url: container.getConnectionUri(), source: 'testcontainers', stop: async () => void (await container.stop()) };
  } catch (error) {
    log.info({ reason: error instanceof Error ? error.message : String(error) }, 'no container runtime; using embedded Postgres');
  }

  const dataDir = await mkdtemp(join(tmpdir(), 'cutover-test-'));
  // As root the server runs as `postgres`, which must be able to enter the directory.
  await chmod(dataDir, 0o755);
  // Two files at a time, each with its pools, pg-boss's, its CLI children and PgBouncers' server
  // connections: more than Postgres's default 100 at the peaks of a full run.
  const server = await startEmbeddedPostgres({ dataDir, log, maxConnections: 400 });
  return {
    url: server.url,
    source: 'embedded',
    stop: async () => {
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

async function withClient<T>(url: string, run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/**
 * Postgres for the whole run: TEST_DATABASE_URL if set; else a testcontainers Postgres when a
 * container runtime answers; else an embedded Postgres on a free port, removed afterwards.
 * Migrates one template database once, so each test's database is a copy (CREATE DATABASE …
 * TEMPLATE) instead of a migration run. Says once, on stderr and in test-results/postgres.txt,
 * which Postgres the tests ran on.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const log = createLogger({ level: 'warn', name: 'test-setup' });
  const server = await provideServer(log);
  project.provide('adminDatabaseUrl', server.url);

  const template = `cutover_template_${randomBytes(6).toString('hex')}`;
  let version: string;
  try {
    version = await withClient(server.url, async (client) => {
      await client.query(`CREATE DATABASE ${template}`);
      return (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version;
    });
    await migrate({ databaseUrl: withDatabase(server.url, template) });
    // No session may be connected to a template while it is copied: refuse them all.
    await withClient(server.url, (client) => client.query(`ALTER DATABASE ${template} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`));
  } catch (error) {
    await server.stop();
    throw error;
  }
  project.provide('templateDatabase', template);

  const where = new URL(server.url);
  const line = `PostgreSQL ${version.split(' ')[0]} from ${server.source} (${where.hostname}:${where.port})`;
  process.stderr.write(`tests run on ${line}\n`);
  await mkdir(join(repoRoot, 'test-results'), { recursive: true });
  await writeFile(join(repoRoot, 'test-results', 'postgres.txt'), `${line}\n`);
  // And which browser the dashboard's browser test drives (or why it will fail: it never skips).
  const browser = await resolveTestBrowser();
  const browserLine = browser.found ? `the dashboard's browser test drives ${browser.browser.description}` : browser.reason;
  process.stderr.write(`${browserLine}\n`);
  await writeFile(join(repoRoot, 'test-results', 'browser.txt'), `${browserLine}\n`);

  return async () => {
    await withClient(server.url, async (client) => {
      await client.query(`ALTER DATABASE ${template} WITH IS_TEMPLATE false`);
      await client.query(`DROP DATABASE IF EXISTS ${template} WITH (FORCE)`);
    }).catch((error: unknown) => log.warn({ err: error }, 'could not drop the template database'));
    await server.stop();
  };
}
