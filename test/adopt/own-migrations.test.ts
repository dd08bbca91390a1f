// A team's own migration that must come before `cutover init` (the job table itself, here)
// goes through `cutover db migrate` like any other; init's adoption migration then follows it.
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { repoRoot, runCliInProcess } from '../helpers/cli.js';
import { createEmptyDatabase, type TestDatabase } from '../helpers/database.js';
import { testPool } from '../helpers/jobs.js';

let database: TestDatabase;
let pool: Pool;
let project: string;
const cli = (...args: string[]) => runCliInProcess([...args, '--database-url', database.url], { cwd: project });

beforeAll(async () => {
  database = await createEmptyDatabase();
  pool = testPool(database.url);
  project = join(repoRoot, '.test-tmp', `own-migrations-${randomBytes(4).toString('hex')}`);
  await mkdir(project, { recursive: true });
  await cp(join(repoRoot, 'examples', 'background-jobs'), project, { recursive: true });
  // The team's table comes from the team's own migration, not from a schema applied by hand.
  const own = join(project, 'prisma', 'migrations', '20260101000000_background_jobs');
  await mkdir(own, { recursive: true });
  await writeFile(join(own, 'migration.sql'), await readFile(join(project, 'schema.sql'), 'utf8'));
});
afterAll(async () => {
  await pool?.end();
  await database?.drop();
  if (project) await rm(project, { recursive: true, force: true });
});

describe('the team’s own migrations before cutover init', () => {
  it('db migrate applies them before init, then init adopts the table they made and db migrate applies the adoption', async () => {
    const first = await cli('db', 'migrate', '--json');
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout).applied).toEqual(['20260101000000_background_jobs']);
    expect((await pool.query(`SELECT to_regclass('public."BackgroundJob"') IS NOT NULL AS made`)).rows[0]).toEqual({ made: true });

    const init = await cli('init');
    expect(init.code, init.stderr).toBe(0);
    const second = await cli('db', 'migrate', '--json');
    expect(second.code, second.stderr).toBe(0);
    const applied = JSON.parse(second.stdout).applied as string[];
    expect(applied.some((name) => name.endsWith('_cutover_adopt'))).toBe(true);
    expect(applied).not.toContain('20260101000000_background_jobs');
    const status = await cli('db', 'status', '--json');
    expect((JSON.parse(status.stdout).migrations as { state: string }[]).every((m) => m.state === 'applied'), status.stdout).toBe(true);
  });

  it('with no migrations at all, db migrate still says to run init first', async () => {
    await rm(join(project, 'prisma', 'migrations'), { recursive: true, force: true });
    const result = await cli('db', 'migrate');
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/holds no cutover adoption migration: run `cutover init` first/);
  });
});
