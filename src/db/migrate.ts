import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { MigrationChecksumError, RuntimeFailure, messageOf } from '../support/errors.js';
import type { Logger } from '../support/log.js';
import { poolConfig } from './pool.js';

/** The package's own migrations, whether running from src/ (tests) or dist/ (the CLI). */
export const builtinMigrationsDir = resolve(dirname(fileURLToPath(import.meta.url)), '../../prisma/migrations');

/**
 * cutover's own tables added after the first release: only new tables, so they apply beside an
 * adopted table's migration as beside the generic table's.
 */
export const cutoverTablesMigrationsDir = resolve(dirname(fileURLToPath(import.meta.url)), '../../prisma/cutover-migrations');

/** Everything the generic table needs, in the order readMigrations sorts it. */
export const builtinMigrationDirs: readonly string[] = [builtinMigrationsDir, cutoverTablesMigrationsDir];

/** Arbitrary but fixed: every cutover migration applier in any process takes this lock. */
const MIGRATION_LOCK_KEY = 7_261_933_104_118_001n;

// Prisma's own bookkeeping table, byte for byte, so `prisma migrate deploy` can take over later.
const createMigrationsTable = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id" VARCHAR(36) NOT NULL,
    "checksum" VARCHAR(64) NOT NULL,
    "finished_at" TIMESTAMPTZ,
    "migration_name" VARCHAR(255) NOT NULL,
    "logs" TEXT,
    "rolled_back_at" TIMESTAMPTZ,
    "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count" INTEGER NOT NULL DEFAULT 0,
    CONSTRAINT "_prisma_migrations_pkey" PRIMARY KEY ("id")
)`;

export interface MigrationFile {
  name: string;
  sql: string;
  checksum: string;
}

export type MigrationState = 'applied' | 'pending' | 'modified' | 'failed' | 'missing-locally';

export interface MigrationStatusEntry {
  name: string;
  state: MigrationState;
  appliedAt: string | null;
}

export interface MigrateResult {
  applied: string[];
  alreadyApplied: string[];
}

/** sha256 of the file's bytes in lowercase hex: what Prisma stores in `_prisma_migrations.checksum`. */
export function migrationChecksum(sql: string): string {
  return createHash('sha256').update(sql, 'utf8').digest('hex');
}

function checksumMatches(sql: string, stored: string): boolean {
  // Prisma also accepts the file with other line endings, since git rewrites them on checkout.
  return (
    migrationChecksum(sql) === stored ||
    migrationChecksum(sql.replace(/\r\n/g, '\n')) === stored ||
    migrationChecksum(sql.replace(/(?<!\r)\n/g, '\r\n')) === stored
  );
}

/** Migration folders in name order, from one or more directories (the built-in set, then a team's own). */
export async function readMigrations(dirs: readonly string[]): Promise<MigrationFile[]> {
  const files: MigrationFile[] = [];
  for (const dir of dirs) {
    const entries = await readdir(dir, { withFileTypes: true }).catch((error: unknown) => {
      throw new RuntimeFailure(`cannot read migrations directory ${dir}`, { cause: error });
    });
    for (const entry of entries) {
      if (!entry.isDirectory()) continue;
      const sql = await readFile(join(dir, entry.name, 'migration.sql'), 'utf8').catch(() => undefined);
      if (sql === undefined) continue;
      files.push({ name: entry.name, sql, checksum: migrationChecksum(sql) });
    }
  }
  files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const duplicate = files.find((file, index) => files[index + 1]?.name === file.name);
  if (duplicate) throw new RuntimeFailure(`migration ${duplicate.name} exists in more than one directory`);
  return files;
}

interface AppliedRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
}

async function appliedMigrations(client: pg.ClientBase): Promise<Map<string, AppliedRow>> {
  const exists = await client.query<{ present: boolean }>(`SELECT to_regclass('"_prisma_migrations"') IS NOT NULL AS present`);
  if (!exists.rows[0]?.present) return new Map();
  const { rows } = await client.query<AppliedRow>(
    `SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations"
      WHERE rolled_back_at IS NULL ORDER BY started_at`,
  );
  return new Map(rows.map((row) => [row.migration_name, row]));
}

function verifyApplied(files: readonly MigrationFile[], applied: Map<string, AppliedRow>): void {
  for (const file of files) {
    const row = applied.get(file.name);
    if (!row) continue;
    if (row.finished_at === null) {
      throw new RuntimeFailure(
        `migration ${file.name} started but never finished (recorded as failed in _prisma_migrations); repair the database by hand, then delete that row`,
      );
    }
    if (!checksumMatches(file.sql, row.checksum)) throw new MigrationChecksumError(file.name);
  }
}

export interface MigrateOptions {
  databaseUrl: string;
  dirs?: readonly string[];
  log?: Logger;
}

/**
 * Applies pending migrations in name order, each once, each in its own transaction. Each
 * transaction takes a transaction-scoped advisory lock first and then looks again whether its
 * migration is applied: a second applier waits for the first's migration to commit, then
 * finds it done. Transaction-scoped, so the lock holds behind a transaction pooler too (a
 * session lock there would be taken on a pooled server connection and outlive this command).
 * A migration whose file changed after it was applied stops everything before any SQL runs.
 */
export async function migrate(options: MigrateOptions): Promise<MigrateResult> {
  const files = await readMigrations(options.dirs ?? builtinMigrationDirs);
  const client = new pg.Client(poolConfig(options.databaseUrl, { applicationName: 'cutover-migrate' }));
  client.on('error', () => undefined);
  await client.connect();
  try {
    const applied = await locked(client, async () => {
      await client.query(createMigrationsTable);
      const rows = await appliedMigrations(client);
      verifyApplied(files, rows);
      return rows;
    });
    const result: MigrateResult = { applied: [], alreadyApplied: [] };
    for (const file of files) {
      if (applied.has(file.name) || !(await applyOne(client, file))) {
        result.alreadyApplied.push(file.name);
        continue;
      }
      options.log?.info({ migration: file.name }, 'applied migration');
      result.applied.push(file.name);
    }
    return result;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** One transaction under the appliers' lock; rolled back if `work` throws. */
async function locked<T>(client: pg.Client, work: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
    const value = await work();
    await client.query('COMMIT');
    return value;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** Applies one migration unless another applier did since we looked; false if it did. */
async function applyOne(client: pg.Client, file: MigrationFile): Promise<boolean> {
  const startedAt = new Date();
  try {
    return await locked(client, async () => {
      const now = (await appliedMigrations(client)).get(file.name);
      if (now) {
        verifyApplied([file], new Map([[file.name, now]]));
        return false;
      }
      // No parameters: the simple query protocol runs a multi-statement script as written.
      await client.query(file.sql);
      await client.query(
        `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
         VALUES ($1, $2, now(), $3, $4, 1)`,
        [randomUUID(), file.checksum, file.name, startedAt],
      );
      return true;
    });
  } catch (error) {
    if (error instanceof RuntimeFailure) throw error;
    const reason = messageOf(error);
    throw new RuntimeFailure(`migration ${file.name} failed and was rolled back: ${reason}`, { cause: error });
  }
}

/** What `db status` shows: every migration known locally or in the database, and its state. */
export async function migrationStatus(options: MigrateOptions): Promise<MigrationStatusEntry[]> {
  const files = await readMigrations(options.dirs ?? builtinMigrationDirs);
  const client = new pg.Client(poolConfig(options.databaseUrl, { applicationName: 'cutover-migrate' }));
  await client.connect();
  try {
    const applied = await appliedMigrations(client);
    const entries: MigrationStatusEntry[] = files.map((file) => {
      const row = applied.get(file.name);
      if (!row) return { name: file.name, state: 'pending', appliedAt: null };
      const state: MigrationState =
        row.finished_at === null ? 'failed' : checksumMatches(file.sql, row.checksum) ? 'applied' : 'modified';
      return { name: file.name, state, appliedAt: row.finished_at?.toISOString() ?? null };
    });
    const local = new Set(files.map((file) => file.name));
    for (const row of applied.values()) {
      if (!local.has(row.migration_name)) {
        entries.push({ name: row.migration_name, state: 'missing-locally', appliedAt: row.finished_at?.toISOString() ?? null });
      }
    }
    return entries;
  } finally {
    await client.end().catch(() => undefined);
  }
}
