// Preflight's pg-boss checks, each made to fail for real: the schema changed under pg-boss,
// background migrations failed or not done, and a queue whose live options are not the registry's.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { queueOptions } from '../../src/pgboss/queues.js';
import type { TestDatabase } from '../helpers/database.js';
import type { Producer } from '../helpers/engines.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { fixtureRegistry } from '../helpers/jobs.js';
import { runCliInProcess } from '../helpers/cli.js';
import { killStragglers } from '../helpers/process.js';

const fixture = useEngineFixture({});
let database: TestDatabase;
let pool: Pool;
let producer: Producer;
beforeEach(() => ({ database, pool, producer } = fixture));
afterEach(killStragglers);

interface Check {
  check: string;
  type: string | null;
  status: 'pass' | 'warn' | 'fail';
  value: string;
  advice: string;
}

async function preflight(): Promise<{ code: number | null; checks: Check[] }> {
  const result = await runCliInProcess(['preflight', '--json', '--type', 'test.noop', '--registry', fixtureRegistry, '--database-url', database.url]);
  expect(result.stdout, result.stderr).not.toBe('');
  return { code: result.code, ...(JSON.parse(result.stdout) as { checks: Check[] }) };
}

const find = (checks: readonly Check[], check: string, type: string | null = null) => checks.find((c) => c.check === check && c.type === type);

describe("preflight's pg-boss checks", () => {
  it('pass on a schema as pg-boss made it and queues as the registry declares them', async () => {
    const { checks } = await preflight();
    expect(find(checks, 'pg-boss schema drift')).toMatchObject({ status: 'pass' });
    expect(find(checks, 'pg-boss schema drift')?.value).toMatch(/^matches pg-boss 12\.38\.\d+ \(schema version \d+\)/);
    expect(find(checks, 'pg-boss migrations')).toMatchObject({ status: 'pass' });
    expect(find(checks, 'queue options', 'test.noop')).toMatchObject({ status: 'pass', value: 'as the registry declares' });
  });

  it('fail on drift in the schema: a column added to a table of pg-boss, an index dropped', async () => {
    const { rows } = await pool.query<{ name: string }>(
      `SELECT i.relname AS name FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace
        WHERE n.nspname = 'pgboss' AND t.relname = 'warning' AND NOT x.indisprimary`,
    );
    const index = rows[0]!.name;
    await pool.query(`ALTER TABLE pgboss.queue ADD COLUMN added_by_hand int`);
    await pool.query(`DROP INDEX pgboss.${index}`);
    const { code, checks } = await preflight();
    expect(code).toBe(1);
    const drift = find(checks, 'pg-boss schema drift')!;
    expect(drift.status).toBe('fail');
    expect(drift.value).toContain(`missing indexes: ${index}`);
    expect(drift.value).toContain('table queue: unexpected columns added_by_hand');
    expect(drift.advice).toMatch(/differs from what pg-boss 12\.38\.\d+ created/);
  });

  it('does not compare a schema of another version, which the schema check fails', async () => {
    await pool.query(`UPDATE pgboss.version SET version = version - 1`);
    const { checks } = await preflight();
    expect(find(checks, 'pg-boss schema')).toMatchObject({ status: 'fail' });
    expect(find(checks, 'pg-boss schema drift')?.value).toMatch(/^not compared: the schema is version \d+, pg-boss 12\.38\.\d+ describes version \d+$/);
    await pool.query(`UPDATE pgboss.version SET version = version + 1`);
  });

  it('warn of background migrations not done, and fail on one that failed, with its error', async () => {
    await pool.query(`INSERT INTO pgboss.bam (name, version, status, table_name, command) VALUES ('job_i9', 46, 'pending', 'job_common', 'SELECT 1')`);
    const pending = await preflight();
    expect(find(pending.checks, 'pg-boss migrations')).toMatchObject({ status: 'warn', value: '1 pending, 0 running' });
    await pool.query(
      `INSERT INTO pgboss.bam (name, version, status, table_name, command, error) VALUES ('job_i8', 46, 'failed', 'job_common', 'SELECT 1', 'could not create unique index')`,
    );
    const failed = await preflight();
    expect(failed.code).toBe(1);
    expect(find(failed.checks, 'pg-boss migrations')).toMatchObject({ status: 'fail', value: '1 background migration(s) failed, 1 not done: job_i8 on job_common: could not create unique index' });
  });

  it("fail on a queue whose options are not the registry's, naming each difference", async () => {
    const declared = queueOptions(fixture.registry.require('test.noop'));
    await producer.boss.updateQueue('test.noop', { retryLimit: declared.retryLimit! + 1 });
    await pool.query(`UPDATE pgboss.queue SET retention_seconds = 3600, policy = 'short' WHERE name = 'test.noop'`);
    const { code, checks } = await preflight();
    expect(code).toBe(1);
    const options = find(checks, 'queue options', 'test.noop')!;
    expect(options.status).toBe('fail');
    expect(options.value).toBe(
      "queue test.noop: policy short live, standard pg-boss's default, which cutover relies on; " +
        `queue test.noop: retryLimit ${declared.retryLimit! + 1} live, ${declared.retryLimit} in the registry; ` +
        "queue test.noop: retentionSeconds 3600 live, 1209600 pg-boss's default, which cutover relies on",
    );
    expect(options.advice).toMatch(/a pg-boss worker sets retry, expiry, dead letter and notify back/);
    expect(options.advice).toMatch(/updateQueue\('test\.noop', \{ retentionSeconds, deleteAfterSeconds \}\)/);
    expect(options.advice).toMatch(/pg-boss cannot change a queue's policy/);
  });
});
