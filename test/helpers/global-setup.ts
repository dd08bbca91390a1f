import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../../src/db/embedded.js';
import { createLogger } from '../../src/log.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A superuser connection to a server where each test file creates its own database. */
    adminDatabaseUrl: string;
  }
}

/**
 * Postgres for the whole run: TEST_DATABASE_URL if set; else a testcontainers Postgres when a
 * container runtime answers; else an embedded Postgres on a free port, removed afterwards.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const log = createLogger({ level: 'warn', name: 'test-setup' });
  if (process.env.TEST_DATABASE_URL) {
    project.provide('adminDatabaseUrl', process.env.TEST_DATABASE_URL);
    return async () => undefined;
  }

  try {
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const container = await new PostgreSqlContainer('postgres:16-alpine').start();
    project.provide('adminDatabaseUrl', container.getConnectionUri());
    return async () => {
      await container.stop();
    };
  } catch (error) {
    log.info({ reason: error instanceof Error ? error.message : String(error) }, 'no container runtime; using embedded Postgres');
  }

  const dataDir = await mkdtemp(join(tmpdir(), 'cutover-test-'));
  // As root the server runs as `postgres`, which must be able to enter the directory.
  await chmod(dataDir, 0o755);
  const server = await startEmbeddedPostgres({ dataDir, log });
  project.provide('adminDatabaseUrl', server.url);
  return async () => {
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  };
}
