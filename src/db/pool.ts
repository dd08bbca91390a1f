import pg from 'pg';

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
 * Session settings of every connection cutover opens: UTC (see above), and the mark that the
 * adoption migration's guard trigger looks for: changes to a pg-boss-owned row's status are
 * cutover's alone, and a team runner whose queries lack `engine = 'LEGACY'` is refused.
 */
export const SESSION_OPTIONS = '-c TimeZone=UTC -c cutover.writer=on';

export function poolConfig(connectionString: string, options: PoolOptions = {}): pg.PoolConfig {
  return {
    connectionString,
    max: options.max ?? 10,
    application_name: options.applicationName ?? 'cutover',
    options: SESSION_OPTIONS,
    types: utcTypes,
    connectionTimeoutMillis: 10_000,
  };
}

export function createPool(connectionString: string, options: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool(poolConfig(connectionString, options));
  // An idle client losing its connection must not crash the process; the next query reports it.
  pool.on('error', () => undefined);
  return pool;
}

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;
/** A pool or one of its clients: whatever can run a single statement (inside a caller's transaction if a client). */
export type Queryable = Pick<Pool, 'query'> | PoolClient;
