// A table whose lower priority numbers run first (delayed_job, Que): the legacy claim, the
// mapper's pg-boss priority and the rows cutover writes all keep the table's most urgent job
// first, and a higher-first table is as before.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { claimNextLegacyJob } from '../../src/legacy/sql.js';
import type { LegacyAdapter } from '../../src/table/adapter.js';
import { pgbossPriority } from '../../src/table/priority.js';
import { bindLegacyTable, toJob, type LegacyTable } from '../../src/table/table.js';
import { insertJobRows } from '../../src/table/tracking.js';
import { createEmptyDatabase, type TestDatabase } from '../helpers/database.js';
import { testPool } from '../helpers/jobs.js';

let database: TestDatabase;
let pool: Pool;

const adapter = (table: string, priorityOrder?: 'higher-first' | 'lower-first'): LegacyAdapter => ({
  table,
  jobType: 'work.do',
  retries: 'same-row',
  columns: { priority: 'priority' },
  ...(priorityOrder ? { priorityOrder } : {}),
  toJob: () => ({ type: 'work.do', payload: {} }),
  toRow: () => ({}),
});

beforeAll(async () => {
  database = await createEmptyDatabase();
  pool = testPool(database.url);
  await pool.query(`CREATE TYPE "JobEngine" AS ENUM ('LEGACY', 'PGBOSS')`);
  for (const name of ['low_first', 'high_first']) {
    await pool.query(`CREATE TABLE ${name} (id serial PRIMARY KEY, status text NOT NULL DEFAULT 'PENDING', attempts int NOT NULL DEFAULT 0, priority int NOT NULL DEFAULT 0,
      "createdAt" timestamptz NOT NULL DEFAULT now(), "updatedAt" timestamptz NOT NULL DEFAULT now(), "startedAt" timestamptz, "completedAt" timestamptz, error text,
      engine "JobEngine" NOT NULL DEFAULT 'LEGACY', "pgbossJobId" uuid, "routeReason" text, bucket int, "workerId" text, "heartbeatAt" timestamptz,
      "runAfter" timestamptz NOT NULL DEFAULT now())`);
    await pool.query(`INSERT INTO ${name} (priority) VALUES (10), (0), (-5), (3)`);
  }
});
afterAll(async () => {
  await pool?.end();
  await database?.drop();
});

/** insertJobRows takes a transaction's query, which returns the rows. */
const rowsOf = { query: async <Row>(text: string, values?: unknown[]) => (await pool.query(text, values)).rows as Row[] };

async function claimOrder(table: LegacyTable): Promise<number[]> {
  const order: number[] = [];
  for (let row = await claimNextLegacyJob(pool, table, 'w', undefined); row; row = await claimNextLegacyJob(pool, table, 'w', undefined)) order.push(Number(row.priority));
  return order;
}

describe('priority order', () => {
  let lowFirst: LegacyTable;
  let highFirst: LegacyTable;
  beforeAll(async () => {
    lowFirst = await bindLegacyTable(pool, adapter('low_first', 'lower-first'));
    highFirst = await bindLegacyTable(pool, adapter('high_first'));
  });

  it('a lower-first table: the legacy claim takes the lowest number first, and pg-boss ranks it highest', async () => {
    const { rows } = await pool.query<Record<string, unknown>>(`SELECT * FROM low_first ORDER BY id`);
    const ranked = [...rows].sort((a, b) => pgbossPriority(toJob(lowFirst, b).priority!) - pgbossPriority(toJob(lowFirst, a).priority!)).map((row) => row.priority);
    expect(ranked).toEqual([-5, 0, 3, 10]);
    expect(await claimOrder(lowFirst)).toEqual([-5, 0, 3, 10]);
  });

  it('a lower-first table: a row cutover writes for an urgent job (cutover priority 7) holds the urgent end of the column', async () => {
    const [id] = await insertJobRows(rowsOf, lowFirst, [{ type: 'work.do', payload: {}, priority: 7, maxAttempts: 1, engine: 'LEGACY' }]);
    const { rows } = await pool.query<{ priority: number }>(`SELECT priority FROM low_first WHERE id = $1`, [id]);
    expect(rows[0]!.priority).toBe(-7);
    expect(toJob(lowFirst, rows[0]!).priority).toBe(7);
  });

  it('a higher-first table (the default) is as before', async () => {
    expect(await claimOrder(highFirst)).toEqual([10, 3, 0, -5]);
    const { rows } = await pool.query<Record<string, unknown>>(`SELECT * FROM high_first WHERE priority = 10`);
    expect(toJob(highFirst, rows[0]!).priority).toBe(10);
  });
});
