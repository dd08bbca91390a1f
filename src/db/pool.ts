import pg from 'pg';
import { watchForPooler } from './pooler.js';

const TIMESTAMP_WITHOUT_TZ_OID = 1114;

/**
 * Legacy tables made by Prisma store `timestamp(3)` in UTC. Sessions run in UTC so that
 * comparisons with now() are right, and such values are read back as UTC whatever the host's
 * TZ is, the way Prisma reads them.
 */
const utcTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === TIMESTAMP_WITHOUT_TZ_OID && format !== 'binary') {
      return (value: string) => new Date(`${value.replace(' ', 'T')}Z`);
    }
    return pg.types.getTypeParser(oid, format);
  },
} as pg.CustomTypesConfig;

export interface PoolOptions {
  max?: number;
  applicationName?: string;
}

/**
 * The startup options cutover used to send. No longer sent: a transaction pooler refuses
 * startup options (PgBouncer: "unsupported startup parameter: options") or, told to ignore
 * them, drops them silently. Kept so that code passing it on still compiles; it should not.
 * @deprecated cutover sends no startup options; see SESSION_SETUP and CUTOVER_APPLICATION.
 */
export const SESSION_OPTIONS = '-c TimeZone=UTC -c cutover.writer=on';

/**
 * Sent on every new connection of createPool's pools: sessions in UTC (see above). TimeZone is
 * a parameter Postgres reports back and poolers track per client (PgBouncer re-applies it on
 * whichever server connection serves the client's next transaction), so a `SET` rides through
 * a transaction pooler where a startup option cannot.
 */
export const SESSION_SETUP = "SET TimeZone = 'UTC'";

/**
 * What marks cutover's own connections for the adoption guard (adopt/adopt.ts): an
 * application_name of `cutover` or `cutover-…`, which every pool here sets and which poolers
 * keep per client. A team runner with another name changing a pg-boss-owned row's status is
 * refused.
 */
export const CUTOVER_APPLICATION = /^cutover(-|$)/;

export function poolConfig(connectionString: string, options: PoolOptions = {}): pg.PoolConfig {
  return {
    connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'cutover',
    // Pools (ours and Prisma's adapter's) run it on each new connection before handing it out;
    // a failure fails that checkout, as a failed connect would.
    onConnect: async (client: pg.ClientBase) => void (await client.query(SESSION_SETUP)),
    types: utcTypes,
    connectionTimeoutMillis: 10_000,
  };
}

export function createPool(connectionString: string, options: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool(poolConfig(connectionString, options));
  // An idle client losing its connection must not crash the process; the next query reports it.
  pool.on('error', () => undefined);
  watchForPooler(connectionString);
  return pool;
}

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
/** A pool or one of its clients: whatever can run a single statement (inside a caller's transaction if a client). */
export type Queryable = Pick<Pool, 'query'> | PoolClient;
