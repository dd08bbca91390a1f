// cutover's connections through a real transaction pooler (PgBouncer 1.18, pool_mode =
// transaction, default startup-parameter refusal): they connect at all (no startup options),
// every statement runs in UTC whatever server connection serves it, and the pooler is detected.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool } from '../../src/db/pool.js';
import { detectTransactionPooler, urlSaysPooled } from '../../src/db/pooler.js';
import { isConnectionStateError } from '../../src/support/pg-errors.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { startPgBouncer, type PgBouncer } from '../helpers/pgbouncer.js';

let database: TestDatabase;
let bouncer: PgBouncer;
beforeAll(async () => {
  database = await createTestDatabase();
  // Sessions of this database start in another zone unless told otherwise, as on a server whose
  // postgresql.conf says so.
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  await admin.query(`ALTER DATABASE ${database.name} SET TimeZone = 'America/New_York'`);
  await admin.end();
  bouncer = await startPgBouncer({ poolSize: 3 });
});
afterAll(async () => {
  await bouncer?.stop();
  await database?.drop();
});

describe('cutover pools through PgBouncer in transaction mode', () => {
  it('connect (no startup options) and run every statement in UTC, on whichever server connection', async () => {
    const pooled = bouncer.urlFor(database.url);
    // Another client's sessions share the same server connections, in their own zone.
    const other = new pg.Pool({ connectionString: pooled, max: 3 });
    const pool = createPool(pooled, { max: 3 });
    try {
      const zones = await Promise.all(
        Array.from({ length: 60 }, async (_, i) => {
          if (i % 2) return (await other.query<{ TimeZone: string }>('SHOW TimeZone')).rows[0]!.TimeZone === 'America/New_York' ? 'other' : 'leak';
          const { rows } = await pool.query<{ zone: string; pid: number }>('SELECT current_setting($1) AS zone, pg_backend_pid() AS pid', ['TimeZone']);
          return rows[0]!.zone;
        }),
      );
      expect(new Set(zones)).toEqual(new Set(['UTC', 'other']));
    } finally {
      await pool.end();
      await other.end();
    }
  });

  it('detect the pooler; a direct connection is not taken for one', async () => {
    expect(await detectTransactionPooler(bouncer.urlFor(database.url))).toBe(true);
    expect(await detectTransactionPooler(database.url)).toBe(false);
    expect(urlSaysPooled('postgresql://u:p@db:6543/app?pgbouncer=true')).toBe(true);
    expect(urlSaysPooled('postgresql://u:p@db:5432/app')).toBe(false);
  });
});

describe('isConnectionStateError', () => {
  const pgError = (code: string) => Object.assign(new Error(`error ${code}`), { code });
  it('is our connection failing, never an answer about the job', () => {
    for (const code of ['26000', '42P05', '08006', '08P01', '57P01', '25P02']) expect(isConnectionStateError(pgError(code)), code).toBe(true);
    expect(isConnectionStateError(new Error('wrapped', { cause: pgError('26000') }))).toBe(true);
    expect(isConnectionStateError(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isConnectionStateError(Object.assign(new Error('read'), { code: 'ECONNRESET' }))).toBe(true);
    for (const code of ['23505', '42501', '22P02', '42P01']) expect(isConnectionStateError(pgError(code)), code).toBe(false);
    expect(isConnectionStateError(new Error('queue test.noop does not exist'))).toBe(false);
  });
});
