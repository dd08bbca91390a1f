// How a finished run is written on a table with a status column whose "finished at" column
// means "succeeded" (the adapter's completedAtMeans): a failure, on either engine, never sets
// it, so the team's own "what succeeded" query does not count failed rows; and a table whose
// column means "finished" still gets it on failure.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { failLegacyJob } from '../../src/legacy/sql.js';
import { markFailed, markRequeued } from '../../src/pgboss/mirror.js';
import type { LegacyAdapter } from '../../src/table/adapter.js';
import { bindLegacyTable, type LegacyTable } from '../../src/table/table.js';
import { createEmptyDatabase, type TestDatabase } from '../helpers/database.js';
import { testPool } from '../helpers/jobs.js';

let database: TestDatabase;
let pool: Pool;

const adapter = (completedAtMeans?: 'finished' | 'succeeded'): LegacyAdapter => ({
  table: 'work',
  jobType: 'work.do',
  retries: 'same-row',
  columns: { completedAt: 'doneAt', error: 'lastError', failedAt: 'failedAt', updatedAt: 'updatedAt', startedAt: 'startedAt' },
  ...(completedAtMeans ? { completedAtMeans } : {}),
  toJob: () => ({ type: 'work.do', payload: {} }),
  toRow: () => ({}),
});

beforeAll(async () => {
  database = await createEmptyDatabase();
  pool = testPool(database.url);
  await pool.query(`CREATE TYPE "JobEngine" AS ENUM ('LEGACY', 'PGBOSS');
    CREATE TABLE work (id serial PRIMARY KEY, status text NOT NULL DEFAULT 'PENDING', attempts int NOT NULL DEFAULT 0,
      "createdAt" timestamptz NOT NULL DEFAULT now(), "updatedAt" timestamptz NOT NULL DEFAULT now(), "startedAt" timestamptz,
      "doneAt" timestamptz, "failedAt" timestamptz, "lastError" text,
      engine "JobEngine" NOT NULL DEFAULT 'LEGACY', "pgbossJobId" uuid, "routeReason" text, bucket int, "workerId" text, "heartbeatAt" timestamptz,
      "runAfter" timestamptz NOT NULL DEFAULT now())`);
});
afterAll(async () => {
  await pool?.end();
  await database?.drop();
});

async function runningRow(engine: 'LEGACY' | 'PGBOSS'): Promise<{ id: string; pgbossJobId: string }> {
  const { rows } = await pool.query<{ id: string; pgbossJobId: string }>(
    `INSERT INTO work (status, attempts, "startedAt", "workerId", engine, "pgbossJobId") VALUES ('RUNNING', 1, now(), 'w1', $1, gen_random_uuid()) RETURNING id::text, "pgbossJobId"::text`,
    [engine],
  );
  return rows[0]!;
}
const outcome = async (id: string) => (await pool.query(`SELECT status, "doneAt" IS NOT NULL AS done, "failedAt" IS NOT NULL AS failed, "lastError" FROM work WHERE id = $1`, [id])).rows[0];

describe('a failed run and the finished-at column', () => {
  let succeededOnly: LegacyTable;
  let finished: LegacyTable;
  beforeAll(async () => {
    succeededOnly = await bindLegacyTable(pool, adapter('succeeded'));
    finished = await bindLegacyTable(pool, adapter());
  });

  it('a column that means "succeeded" is left unset by a failure on the legacy engine and on pg-boss; the failure time is set', async () => {
    const legacy = await runningRow('LEGACY');
    expect(await failLegacyJob(pool, succeededOnly, legacy.id, 'w1', 'boom', null)).toBeDefined();
    expect(await outcome(legacy.id)).toEqual({ status: 'FAILED', done: false, failed: true, lastError: 'boom' });

    const boss = await runningRow('PGBOSS');
    expect(await markFailed(pool, succeededOnly, boss.pgbossJobId, 'boom', 1, false)).toBe(1);
    expect(await outcome(boss.id)).toEqual({ status: 'FAILED', done: false, failed: true, lastError: 'boom' });
    const again = await runningRow('PGBOSS');
    expect(await markFailed(pool, succeededOnly, again.pgbossJobId, 'boom', 1, true)).toBe(1);
    expect(await outcome(again.id)).toEqual({ status: 'PENDING', done: false, failed: true, lastError: 'boom' });
  });

  it('a column that means "finished" (the default) is set by a failure as before', async () => {
    const legacy = await runningRow('LEGACY');
    await failLegacyJob(pool, finished, legacy.id, 'w1', 'boom', null);
    expect(await outcome(legacy.id)).toMatchObject({ status: 'FAILED', done: true });
    const boss = await runningRow('PGBOSS');
    await markFailed(pool, finished, boss.pgbossJobId, 'boom', 1, false);
    expect(await outcome(boss.id)).toMatchObject({ status: 'FAILED', done: true });
  });

  it('a dead letter sent back clears a failure time that means "failed for good", and keeps one that records every failed run', async () => {
    const forGood = await bindLegacyTable(pool, { ...adapter('succeeded'), failedAtMeans: 'failed-for-good' });
    const boss = await runningRow('PGBOSS');
    await markFailed(pool, forGood, boss.pgbossJobId, 'boom', 3, false);
    expect(await outcome(boss.id)).toMatchObject({ status: 'FAILED', failed: true });
    expect(await markRequeued(pool, forGood, boss.pgbossJobId)).toBe(1);
    expect(await outcome(boss.id)).toEqual({ status: 'PENDING', done: false, failed: false, lastError: 'boom' });

    const other = await runningRow('PGBOSS');
    await markFailed(pool, succeededOnly, other.pgbossJobId, 'boom', 3, false);
    await markRequeued(pool, succeededOnly, other.pgbossJobId);
    expect(await outcome(other.id)).toMatchObject({ status: 'PENDING', failed: true });
  });
});
