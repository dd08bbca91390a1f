// New rows of any table are written through one typed array per column, unnested side by side:
// every column keeps what its own type makes of a value (an enum, a uuid, JSON that is a
// string, a length the column refuses rather than cuts), where a JSON record per row did
// the same at half as much again of Postgres's time.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import type { LegacyAdapter } from '../../src/table/adapter.js';
import { insertRows, insertRowsStatement, Params } from '../../src/table/rows.js';
import { bindLegacyTable, type LegacyTable } from '../../src/table/table.js';
import { createEmptyDatabase, type TestDatabase } from '../helpers/database.js';
import { testPool } from '../helpers/jobs.js';

let database: TestDatabase;
let pool: Pool;
let table: LegacyTable;
const tx = () => ({ query: async <Row>(text: string, values?: unknown[]) => (await pool.query(text, values)).rows as Row[] });

const adapter: LegacyAdapter = {
  table: 'typed',
  jobType: 'typed.do',
  retries: 'same-row',
  toJob: () => ({ type: 'typed.do', payload: {} }),
  toRow: () => ({}),
};

beforeAll(async () => {
  database = await createEmptyDatabase();
  pool = testPool(database.url);
  await pool.query(`CREATE TYPE "Mood" AS ENUM ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED');
    CREATE TYPE "JobEngine" AS ENUM ('LEGACY', 'PGBOSS');
    CREATE DOMAIN doc AS jsonb;
    CREATE TYPE pair AS (a int, b text);
    CREATE TABLE typed (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, status "Mood" NOT NULL DEFAULT 'PENDING', attempts int NOT NULL DEFAULT 0,
      "createdAt" timestamp(3) NOT NULL, "updatedAt" timestamptz NOT NULL, "startedAt" timestamptz, "completedAt" timestamptz, error text,
      ref uuid, code varchar(5), initial char(2), flag boolean, amount numeric(8,2), body jsonb, raw json, meta doc, tags text[], spot pair, note text,
      engine "JobEngine" NOT NULL DEFAULT 'LEGACY', "pgbossJobId" uuid, "routeReason" text, bucket int, "workerId" text, "heartbeatAt" timestamptz,
      "runAfter" timestamptz NOT NULL)`);
  table = await bindLegacyTable(pool, adapter);
});
afterAll(async () => {
  await pool?.end();
  await database?.drop();
});

const read = async () =>
  (
    await pool.query(
      `SELECT id::text, status::text, attempts, "createdAt"::text AS "createdAt", "updatedAt" IS NOT NULL AS updated, "runAfter" IS NOT NULL AS due,
              ref::text, code, initial, flag, amount::text, body, raw::text, meta, tags, spot::text, note, engine::text
         FROM typed ORDER BY id`,
    )
  ).rows;

describe('rows written through typed arrays', () => {
  it('keeps each column as its type reads it, absent and null alike as NULL, the times defaulted', async () => {
    await insertRows(tx(), table, [
      {
        id: '41',
        status: 'RUNNING',
        attempts: 2,
        createdAt: new Date('2026-01-02T03:04:05.678Z'),
        ref: '6f1c2a4e-8b0d-4c3e-9a7f-1d2e3f4a5b6c',
        code: 'a"b\\,',
        initial: 'x',
        flag: true,
        amount: 12.5,
        body: { list: [1, 'two'], quote: 'say "hi"', nothing: null },
        raw: 'only a string',
        meta: { k: 'v' },
        tags: ['a', 'b,c', 'NULL'],
        spot: { a: 1, b: 'x y' },
        note: { n: 1 },
        engine: 'PGBOSS',
      },
      { id: '42', status: 'PENDING', engine: 'LEGACY', body: null, tags: null, note: 'NULL', attempts: 0 },
    ]);
    const [first, second] = await read();
    expect(first).toEqual({
      id: '41',
      status: 'RUNNING',
      attempts: 2,
      createdAt: '2026-01-02 03:04:05.678',
      updated: true,
      due: true,
      ref: '6f1c2a4e-8b0d-4c3e-9a7f-1d2e3f4a5b6c',
      code: 'a"b\\,',
      initial: 'x ',
      flag: true,
      amount: '12.50',
      body: { list: [1, 'two'], quote: 'say "hi"', nothing: null },
      raw: '"only a string"',
      meta: { k: 'v' },
      tags: ['a', 'b,c', 'NULL'],
      spot: '(1,"x y")',
      note: '{"n":1}',
      engine: 'PGBOSS',
    });
    expect(second).toMatchObject({ id: '42', status: 'PENDING', updated: true, due: true, ref: null, code: null, body: null, tags: null, spot: null, note: 'NULL', engine: 'LEGACY' });
    expect(second?.createdAt).not.toBeNull();
  });

  it('refuses a value too long for its column rather than cutting it short', async () => {
    await expect(insertRows(tx(), table, [{ id: '43', status: 'PENDING', engine: 'LEGACY', code: 'abcdef' }])).rejects.toThrow(/too long/);
    await expect(insertRows(tx(), table, [{ id: '43', status: 'PENDING', engine: 'LEGACY', initial: 'xyz' }])).rejects.toThrow(/too long/);
  });

  it('binds one array per column after the values a larger statement holds, and keeps what follows its FROM item', async () => {
    const params = new Params(['skip']);
    const text = insertRowsStatement(table, [{ id: '44', note: 'skip', status: 'PENDING' }, { id: '45', note: 'keep', status: 'FAILED' }], params, `CROSS JOIN (SELECT $1::text AS tag) AS t WHERE r."note" IS DISTINCT FROM t.tag`);
    expect(text).toContain('unnest($2::bigint[], $3::text[], $4::"Mood"[]');
    expect(params.values.slice(0, 3)).toEqual(['skip', ['44', '45'], ['skip', 'keep']]);
    await pool.query(text, params.values);
    expect((await read()).filter((row) => Number(row.id) >= 44).map((row) => [row.id, row.note, row.status])).toEqual([['45', 'keep', 'FAILED']]);
  });
});
