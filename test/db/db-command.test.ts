import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmptyDatabase, type TestDatabase } from '../helpers/database.js';
import { runCli } from '../helpers/cli.js';

let database: TestDatabase;
/** What `cutover db migrate` applies to an empty database, in order. */
const BUILTIN = ['0001_legacy', '0002_cutover', '0003_cutover_tables', '0004_backlog_index', '0005_cutover_rollout_end', '0006_job_archive', '0007_notifications', '0009_leases'];
beforeAll(async () => (database = await createEmptyDatabase()));
afterAll(async () => database.drop());

describe('cutover db', () => {
  it('migrate --json lists what it applied, and a second run applies nothing', async () => {
    const first = await runCli(['db', 'migrate', '--json', '--database-url', database.url]);
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toEqual({ applied: BUILTIN, alreadyApplied: [] });

    const second = await runCli(['db', 'migrate', '--json'], { env: { DATABASE_URL: database.url } });
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout).applied).toEqual([]);

    const status = await runCli(['db', 'status', '--json', '--database-url', database.url]);
    expect(JSON.parse(status.stdout).migrations.map((m: { state: string }) => m.state)).toEqual(BUILTIN.map(() => 'applied'));
  });

  it('exits 3 with one line when the database is unreachable', async () => {
    const result = await runCli(['db', 'migrate', '--database-url', 'postgresql://cutover:secret-pw@127.0.0.1:1/nowhere']);
    expect(result.code).toBe(3);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^cutover: cannot reach the database at 127\.0\.0\.1:1\/nowhere/);
    expect(result.stderr).not.toContain('secret-pw');
  });

  it('exits 2 for an unknown option, an unknown command and a malformed URL', async () => {
    expect((await runCli(['db', 'migrate', '--frobnicate'])).code).toBe(2);
    expect((await runCli(['teleport'])).code).toBe(2);
    const bad = await runCli(['status'], { env: { DATABASE_URL: 'mysql://x' } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/DATABASE_URL must be a postgres/);
  });
});

describe('embedded Postgres', () => {
  let cwd: string;
  beforeAll(async () => {
    cwd = await mkdtemp(join(tmpdir(), 'cutover-embedded-'));
    await chmod(cwd, 0o755);
  });
  afterAll(async () => rm(cwd, { recursive: true, force: true }));

  it('starts in .cutover/ with no database configured, stops on exit, and keeps its data', async () => {
    const env = { DATABASE_URL: '' };
    const first = await runCli(['db', 'migrate', '--json'], { cwd, env });
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout).applied).toEqual(BUILTIN);
    expect(existsSync(join(cwd, '.cutover', 'pgdata', 'PG_VERSION'))).toBe(true);
    expect(existsSync(join(cwd, '.cutover', 'pgdata', 'postmaster.pid'))).toBe(false);

    const second = await runCli(['db', 'migrate', '--json'], { cwd, env });
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ applied: [], alreadyApplied: BUILTIN });
    expect(existsSync(join(cwd, '.cutover', 'pgdata', 'postmaster.pid'))).toBe(false);
  });
});
