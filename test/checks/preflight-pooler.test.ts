// Preflight on a URL behind a real transaction pooler (PgBouncer 1.18, pool_mode = transaction):
// it names the pooler, says what needs DIRECT_URL and what works without it.
import { beforeAll, describe, expect, it } from 'vitest';
import type { Check } from '../../src/checks/preflight.js';
import { preflight } from '../../src/checks/preflight.js';
import { builtinMigrationDirs } from '../../src/db/migrate.js';
import type { Pool } from '../../src/db/pool.js';
import { loadRegistry } from '../../src/jobs/registry.js';
import { GENERIC_TABLE } from '../../src/table/table.js';
import type { TestDatabase } from '../helpers/database.js';
import { fixtureRegistry } from '../helpers/jobs.js';
import { runCliInProcess } from '../helpers/cli.js';
import { usePooledDatabase } from '../helpers/fixture.js';

const pooled = usePooledDatabase();
let database: TestDatabase;
let pool: Pool;
let pooledUrl: string;
beforeAll(() => ({ database, direct: pool, pooledUrl } = pooled));

async function connectionCheck(env: NodeJS.ProcessEnv): Promise<Check | undefined> {
  const result = await runCliInProcess(['preflight', '--json', '--type', 'test.noop', '--registry', fixtureRegistry], { env });
  expect(result.stderr).not.toMatch(/error/i);
  return (JSON.parse(result.stdout) as { checks: Check[] }).checks.find((check) => check.check === 'connection');
}

describe('preflight behind a transaction pooler', () => {
  it('names the pooler, what needs DIRECT_URL and what works without it', async () => {
    const check = await connectionCheck({ DATABASE_URL: pooledUrl });
    expect(check).toMatchObject({ status: 'warn', type: null });
    expect(check?.value).toMatch(/^a transaction pooler .*no DIRECT_URL/);
    expect(check?.advice).toMatch(/give DIRECT_URL/);
    expect(check?.advice).toMatch(/pg-boss workers LISTEN on it \(without: they poll/);
    expect(check?.advice).toMatch(/`db migrate`/);
    expect(check?.advice).toMatch(/locks on it \(without: leases, and a killed command's lock frees after up to 30 s/);
    expect(check?.advice).toMatch(/producers \(enqueue\), the legacy runner.*work through the pooler/);
  });

  it('passes on a session, and behind the pooler once DIRECT_URL is a session; fails when DIRECT_URL is pooled too', async () => {
    expect(await connectionCheck({ DATABASE_URL: database.url })).toMatchObject({ status: 'pass', value: expect.stringMatching(/^a session/) });
    const registry = await loadRegistry(fixtureRegistry);
    const run = (directUrl: string) =>
      preflight({ pool, registry, table: GENERIC_TABLE, migrationDirs: builtinMigrationDirs, databaseUrl: pooledUrl, directUrl, types: ['test.noop'] });
    const withDirect = (await run(database.url)).checks.find((check) => check.check === 'connection');
    expect(withDirect).toMatchObject({ status: 'pass', value: expect.stringMatching(/^a transaction pooler; DIRECT_URL is a session/) });
    expect(withDirect?.value).not.toMatch(/without:/);
    const bothPooled = (await run(pooledUrl)).checks.find((check) => check.check === 'connection');
    expect(bothPooled).toMatchObject({ status: 'fail', value: 'a transaction pooler, and DIRECT_URL is one too' });
  });

  it('refuses a DIRECT_URL without DATABASE_URL, and one that is not a postgres URL, without showing it', async () => {
    const alone = await runCliInProcess(['status'], { env: { DATABASE_URL: '', DIRECT_URL: database.url } });
    expect(alone.code).toBe(2);
    expect(alone.stderr).toMatch(/DIRECT_URL \(or --direct-url\) is set but DATABASE_URL \(or --database-url\) is not/);
    const wrong = await runCliInProcess(['status'], { env: { DATABASE_URL: pooledUrl, DIRECT_URL: 'mysql://root:s3cret@host/db' } });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/DIRECT_URL must be a postgres:\/\/ or postgresql:\/\/ connection string, got a mysql:\/\/ URL \(the rest is not shown\)/);
    expect(wrong.stderr).not.toMatch(/s3cret/);
  });
});
