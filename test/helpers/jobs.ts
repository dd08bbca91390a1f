import pg from 'pg';
import { insertJobRows, type NewJobRow } from '../../src/table/tracking.js';
import { createPool, type Pool } from '../../src/db/pool.js';
import { GENERIC_TABLE } from '../../src/table/table.js';
import { join } from 'node:path';
import { repoRoot } from './cli.js';

export const fixtureRegistry = join(repoRoot, 'test', 'fixtures', 'registry.mjs');
/** The fixture registry plus the coverage tests' job types (retry delays, rate limits, overrun). */
export const suiteRegistry = join(repoRoot, 'test', 'fixtures', 'suite-registry.mjs');

export function testPool(url: string): Pool {
  return createPool(url, { max: 4, applicationName: 'cutover-test' });
}

export async function addLegacyJobs(pool: Pool, type: string, payloads: readonly unknown[], extra: Partial<NewJobRow> = {}): Promise<string[]> {
  const tx = { query: async <Row>(text: string, values?: unknown[]) => (await pool.query(text, values)).rows as Row[] };
  return insertJobRows(tx, GENERIC_TABLE, payloads.map((payload) => ({ type, payload, maxAttempts: 3, engine: 'LEGACY' as const, ...extra })));
}

export interface JobRow {
  id: string;
  type: string;
  status: string;
  engine: string;
  attempts: number;
  maxAttempts: number;
  originalJobId: string | null;
  error: string | null;
  logs: string | null;
  result: unknown;
  workerId: string | null;
  routeReason: string | null;
}

export async function jobRows(pool: Pick<pg.Pool, 'query'>, where = 'TRUE', params: unknown[] = []): Promise<JobRow[]> {
  const { rows } = await pool.query<JobRow>(`SELECT * FROM "Job" WHERE ${where} ORDER BY "createdAt", attempts`, params);
  return rows;
}

export async function countWhere(pool: Pick<pg.Pool, 'query'>, where: string, params: unknown[] = []): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM "Job" WHERE ${where}`, params);
  return Number(rows[0]?.n ?? 0);
}
