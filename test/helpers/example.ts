import { cp, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { loadConfigFile } from '../../src/config/file.js';
import type { Pool } from '../../src/db/pool.js';
import { loadRegistry } from '../../src/jobs/registry.js';
import { bindLegacyTable } from '../../src/table/table.js';
import { repoRoot, runCliInProcess, type CliResult } from './cli.js';
import { createEmptyDatabase, type TestDatabase } from './database.js';
import { startProducer, type Producer } from './engines.js';
import { testPool } from './jobs.js';
import { killStragglers, startCli, type CliProcess } from './process.js';

export interface Example {
  database: TestDatabase;
  pool: Pool;
  /** A copy of the example directory inside the repository, so its `import 'cutover'` resolves. */
  project: string;
  /** A producer on the adopted table (after init and db migrate). */
  producer: Producer;
  cli(...args: string[]): Promise<CliResult>;
  worker(engine: 'legacy' | 'pgboss', ...args: string[]): CliProcess;
}

/**
 * An adopted example table for a test file: a fresh database with the example's schema.sql,
 * `seed` run on it (the team's rows before cutover), then `cutover init` and `cutover db
 * migrate` as the team would run them in a copy of the example directory.
 */
export function useExample(name: string, seed: (pool: Pool) => Promise<void> = async () => undefined): Example {
  const example = {} as Example;
  beforeAll(async () => {
    example.database = await createEmptyDatabase();
    example.pool = testPool(example.database.url);
    const source = join(repoRoot, 'examples', name);
    await example.pool.query(await readFile(join(source, 'schema.sql'), 'utf8'));
    example.project = join(repoRoot, '.test-tmp', `${name}-${randomBytes(4).toString('hex')}`);
    await mkdir(example.project, { recursive: true });
    await cp(source, example.project, { recursive: true });
    example.cli = (...args) => runCliInProcess([...args, '--database-url', example.database.url], { cwd: example.project });
    example.worker = (engine, ...args) =>
      startCli(['worker', '--engine', engine, ...(engine === 'legacy' ? ['--poll-ms', '50'] : []), '--database-url', example.database.url, ...args], {}, { cwd: example.project });
    await seed(example.pool);
    const init = await example.cli('init');
    expect(init.code, init.stderr).toBe(0);
    const applied = await example.cli('db', 'migrate');
    expect(applied.code, applied.stderr).toBe(0);
    const config = await loadConfigFile(undefined, example.project);
    const table = await bindLegacyTable(example.pool, config.legacy!);
    example.producer = await startProducer(example.database.url, example.pool, await loadRegistry(config.registry), { ttlMs: 200, table });
  });
  afterEach(killStragglers);
  afterAll(async () => {
    await example.producer?.close();
    await example.pool?.end();
    await example.database?.drop();
    if (example.project) await rm(example.project, { recursive: true, force: true });
  });
  return example;
}

/** Stops workers with SIGTERM and expects each to exit 0 (their stderr in the message otherwise). */
export async function stopWorkers(workers: readonly CliProcess[]): Promise<void> {
  for (const process of workers) process.kill('SIGTERM');
  const exits = await Promise.all(workers.map((process) => process.exited));
  expect(
    exits.map((exit) => exit.code),
    workers.map((process) => process.stderr()).join('\n'),
  ).toEqual(workers.map(() => 0));
}
