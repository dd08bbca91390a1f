// Shared by the benchmarks: a Postgres server (BENCH_DATABASE_URL, or an embedded one in a
// temp dir), a fresh migrated database per benchmark, and the results table.
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../dist/db/embedded.js';
import { migrate } from '../../dist/db/migrate.js';
import { createPool } from '../../dist/db/pool.js';
import { loadRegistry } from '../../dist/jobs/registry.js';
import { createLogger } from '../../dist/log.js';
import { startBoss } from '../../dist/pgboss/boss.js';
import { ensureQueues } from '../../dist/pgboss/queues.js';

export const log = createLogger({ level: 'warn', name: 'bench' });

export const seconds = (start) => (performance.now() - start) / 1000;
export const round = (value) => Math.round(value * 100) / 100;

export async function withServer(run) {
  if (process.env.BENCH_DATABASE_URL) return run(process.env.BENCH_DATABASE_URL);
  const dataDir = await mkdtemp(join(tmpdir(), 'cutover-bench-'));
  await chmod(dataDir, 0o755); // as root the server runs as `postgres`, which must enter it
  const server = await startEmbeddedPostgres({ dataDir, log });
  try {
    return await run(server.url);
  } finally {
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

/** A fresh migrated database per benchmark, with pool, pg-boss and the demo registry. */
export async function withDatabase(adminUrl, name, run, registryModule) {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const databaseUrl = url.toString();
  await migrate({ databaseUrl });
  const pool = createPool(databaseUrl, { max: 6 });
  const boss = await startBoss({ databaseUrl, log, max: 6 });
  const registry = await loadRegistry(registryModule);
  await ensureQueues(boss, registry, log);
  try {
    return await run({ databaseUrl, pool, boss, registry });
  } finally {
    await boss.stop({ graceful: false, close: true });
    await pool.end();
    await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await admin.end();
  }
}

/** Prints the results as a table and writes them to bench-results/<file>. */
export async function report(file, results) {
  await mkdir('bench-results', { recursive: true });
  await writeFile(join('bench-results', file), `${JSON.stringify({ at: new Date().toISOString(), results }, null, 2)}\n`);
  const keys = ['name', 'measured', 'reference', 'ratio'];
  const widths = keys.map((key) => Math.max(key.length, ...results.map((r) => String(r[key]).length + 1)));
  const line = (cells) => cells.map((cell, i) => String(cell).padEnd(widths[i])).join('  ');
  process.stdout.write(`${line(keys)}\n${results.map((r) => line([r.name, r.measured, r.reference, `${r.ratio}x`])).join('\n')}\n`);
}
