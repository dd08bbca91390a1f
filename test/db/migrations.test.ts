import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { builtinMigrationDirs, builtinMigrationsDir, migrate, migrationChecksum, migrationStatus, readMigrations } from '../../src/db/migrate.js';
import { createPrisma } from '../../src/db/prisma.js';
import { MigrationChecksumError, RuntimeFailure } from '../../src/support/errors.js';
import { createEmptyDatabase, type TestDatabase } from '../helpers/database.js';

let database: TestDatabase;
let scratch: string;

beforeEach(async () => {
  database = await createEmptyDatabase();
  scratch = await mkdtemp(join(tmpdir(), 'cutover-migrations-'));
});

afterEach(async () => {
  await database.drop();
  await rm(scratch, { recursive: true, force: true });
});

async function recorded(url: string): Promise<{ migration_name: string; checksum: string; applied_steps_count: number }[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(`SELECT migration_name, checksum, applied_steps_count FROM "_prisma_migrations" ORDER BY migration_name`);
    return rows;
  } finally {
    await client.end();
  }
}

/** The generic table's migrations, then cutover's later tables (prisma/cutover-migrations). */
const BUILTIN = ['0001_legacy', '0002_cutover', '0003_cutover_tables', '0004_backlog_index', '0005_cutover_rollout_end', '0006_job_archive', '0007_notifications', '0009_leases'];

describe('migration applier', () => {
  it('applies every migration once, in order, recording Prisma checksums', async () => {
    const files = await readMigrations(builtinMigrationDirs);
    expect(files.map((f) => f.name)).toEqual(BUILTIN);

    const result = await migrate({ databaseUrl: database.url });
    expect(result).toEqual({ applied: files.map((f) => f.name), alreadyApplied: [] });

    const rows = await recorded(database.url);
    expect(rows).toEqual(files.map((f) => ({ migration_name: f.name, checksum: migrationChecksum(f.sql), applied_steps_count: 1 })));
    expect(rows[0]?.checksum).toMatch(/^[0-9a-f]{64}$/);
  });

  it('is a no-op the second time', async () => {
    await migrate({ databaseUrl: database.url });
    const second = await migrate({ databaseUrl: database.url });
    expect(second.applied).toEqual([]);
    expect(second.alreadyApplied).toEqual(BUILTIN);
    expect(await recorded(database.url)).toHaveLength(BUILTIN.length);
  });

  it('refuses to run when an applied migration was changed', async () => {
    await cp(builtinMigrationsDir, scratch, { recursive: true });
    await migrate({ databaseUrl: database.url, dirs: [scratch] });
    await writeFile(join(scratch, '0002_cutover', 'migration.sql'), '-- edited\nSELECT 1;\n');
    await mkdir(join(scratch, '0004_next'));
    await writeFile(join(scratch, '0004_next', 'migration.sql'), 'CREATE TABLE "ShouldNotExist" (id int);');

    await expect(migrate({ databaseUrl: database.url, dirs: [scratch] })).rejects.toThrow(MigrationChecksumError);
    await expect(migrate({ databaseUrl: database.url, dirs: [scratch] })).rejects.toThrow(/0002_cutover was changed/);
    const status = await migrationStatus({ databaseUrl: database.url, dirs: [scratch] });
    expect(status.find((s) => s.name === '0002_cutover')?.state).toBe('modified');
    expect(status.find((s) => s.name === '0004_next')?.state).toBe('pending');
  });

  it('accepts a file whose line endings git rewrote', async () => {
    await cp(builtinMigrationsDir, scratch, { recursive: true });
    await migrate({ databaseUrl: database.url, dirs: [scratch] });
    const { readFile } = await import('node:fs/promises');
    const path = join(scratch, '0001_legacy', 'migration.sql');
    await writeFile(path, (await readFile(path, 'utf8')).replace(/\n/g, '\r\n'));
    await expect(migrate({ databaseUrl: database.url, dirs: [scratch] })).resolves.toMatchObject({ applied: [] });
  });

  it('lets only one of two concurrent appliers apply each migration', async () => {
    const [a, b] = await Promise.all([migrate({ databaseUrl: database.url }), migrate({ databaseUrl: database.url })]);
    // Each migration is applied by exactly one of them (the lock is per migration, so they may
    // take turns), and in name order whichever applied it.
    expect([...a.applied, ...b.applied].sort()).toEqual(BUILTIN);
    expect(await recorded(database.url)).toHaveLength(BUILTIN.length);
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ migration_name: string }>(`SELECT migration_name FROM "_prisma_migrations" ORDER BY finished_at, migration_name`);
      expect(rows.map((row) => row.migration_name)).toEqual(BUILTIN);
    } finally {
      await client.end();
    }
  });

  it('rolls a failing migration back whole and records nothing for it', async () => {
    await mkdir(join(scratch, '0001_ok'));
    await writeFile(join(scratch, '0001_ok', 'migration.sql'), 'CREATE TABLE "Kept" (id int);');
    await mkdir(join(scratch, '0002_broken'));
    await writeFile(join(scratch, '0002_broken', 'migration.sql'), 'CREATE TABLE "HalfDone" (id int);\nSELECT * FROM "NoSuchTable";');

    const failure = migrate({ databaseUrl: database.url, dirs: [scratch] });
    await expect(failure).rejects.toThrow(RuntimeFailure);
    await expect(failure).rejects.toThrow(/0002_broken failed and was rolled back/);

    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    const { rows } = await client.query(`SELECT to_regclass('"Kept"') AS kept, to_regclass('"HalfDone"') AS half`);
    await client.end();
    expect(rows[0]).toEqual({ kept: '"Kept"', half: null });
    expect((await recorded(database.url)).map((r) => r.migration_name)).toEqual(['0001_ok']);
  });
});

describe('the SQL matches schema.prisma', () => {
  it('lets Prisma Client create, read, update and delete a row of every model', async () => {
    await migrate({ databaseUrl: database.url });
    const prisma = createPrisma(database.url);
    try {
      const job = await prisma.job.create({ data: { type: 'import.article', payload: { url: 'https://example.com' } } });
      expect(job).toMatchObject({ status: 'PENDING', engine: 'LEGACY', attempts: 0, maxAttempts: 3, priority: 0 });
      const updated = await prisma.job.update({
        where: { id: job.id },
        data: { status: 'COMPLETED', result: { ok: true }, engine: 'PGBOSS', pgbossJobId: job.id, durationInSeconds: 1.5, heartbeatAt: new Date() },
      });
      expect(updated.updatedAt.getTime()).toBeGreaterThanOrEqual(job.updatedAt.getTime());
      expect((await prisma.job.findUniqueOrThrow({ where: { pgbossJobId: job.id } })).result).toEqual({ ok: true });
      await prisma.job.delete({ where: { id: job.id } });

      await prisma.rolloutFlag.create({ data: { jobType: '*', basisPoints: 2500 } });
      await prisma.rolloutFlag.update({ where: { jobType: '*' }, data: { killSwitch: true } });
      expect(await prisma.rolloutFlag.findUnique({ where: { jobType: '*' } })).toMatchObject({ basisPoints: 2500, killSwitch: true, fallbackToLegacy: true });
      await prisma.rolloutFlag.delete({ where: { jobType: '*' } });

      const event = await prisma.rolloutEvent.create({ data: { actor: 'test', action: 'flag.set', before: { basisPoints: 0 }, after: { basisPoints: 100 } } });
      await prisma.rolloutEvent.update({ where: { id: event.id }, data: { reason: 'why' } });
      expect((await prisma.rolloutEvent.findFirstOrThrow()).reason).toBe('why');
      await prisma.rolloutEvent.delete({ where: { id: event.id } });

      const run = await prisma.rolloutPlanRun.create({ data: { planName: 'default', jobType: '*', plan: { steps: [] }, state: 'running' } });
      await prisma.rolloutPlanRun.update({ where: { id: run.id }, data: { currentStep: 2, state: 'completed', finishedAt: new Date() } });
      expect((await prisma.rolloutPlanRun.findUniqueOrThrow({ where: { id: run.id } })).currentStep).toBe(2);
      await prisma.rolloutPlanRun.delete({ where: { id: run.id } });

      const reconcile = await prisma.reconcileRun.create({ data: { findings: 0, summary: { lost: 0 } } });
      await prisma.reconcileRun.update({ where: { id: reconcile.id }, data: { findings: 1 } });
      expect((await prisma.reconcileRun.findFirstOrThrow()).findings).toBe(1);
      await prisma.reconcileRun.delete({ where: { id: reconcile.id } });

      await prisma.migrationQuarantine.create({ data: { jobId: 'legacy-1', jobType: 'nope', reason: 'unknown job type' } });
      await prisma.migrationQuarantine.update({ where: { jobId: 'legacy-1' }, data: { reason: 'invalid payload' } });
      expect((await prisma.migrationQuarantine.findFirstOrThrow()).reason).toBe('invalid payload');
      await prisma.migrationQuarantine.delete({ where: { jobId: 'legacy-1' } });

      const delivery = await prisma.demoDelivery.create({ data: { jobId: 'j1', engine: 'LEGACY' } });
      await prisma.demoDelivery.update({ where: { id: delivery.id }, data: { engine: 'PGBOSS' } });
      expect((await prisma.demoDelivery.findFirstOrThrow()).engine).toBe('PGBOSS');
      await prisma.demoDelivery.delete({ where: { id: delivery.id } });
    } finally {
      await prisma.$disconnect();
    }
  });
});
