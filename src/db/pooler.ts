import type pg from 'pg';
import { disablePreparedStatements } from './prepared.js';

async function backendPid(client: pg.PoolClient): Promise<number> {
  return (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
}

/**
 * True when the URL says it is pooled the way Prisma's users say so (`?pgbouncer=true`), so
 * the answer is known before the first statement.
 */
export function urlSaysPooled(url: string): boolean {
  try {
    return new URL(url).searchParams.get('pgbouncer') === 'true';
  } catch {
    return false;
  }
}

/**
 * Whether a transaction pooler stands between this pool and Postgres: two clients, both
 * connected, each asks for its backend's pid outside a transaction. Directly, two connected
 * clients are two sessions and never share a pid; through a transaction pooler the second is
 * answered by the server connection the first just gave back (PgBouncer hands out the most
 * recently used one), or the first's next statement by another one. Tried `attempts` times,
 * since a busy pooler may hand out other connections by chance. Needs two clients of the pool.
 */
export async function detectTransactionPooler(pool: pg.Pool, attempts = 3): Promise<boolean> {
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    const first = await pool.connect();
    try {
      const second = await pool.connect();
      try {
        const a = await backendPid(first);
        const b = await backendPid(second);
        if (a === b) return true;
        // The second holds a server connection in a transaction while the first asks again.
        await second.query('BEGIN');
        const [again] = await Promise.all([backendPid(first), second.query('SELECT 1').then(() => second.query('COMMIT'))]);
        if (again !== a) return true;
      } finally {
        second.release();
      }
    } finally {
      first.release();
    }
  }
  return false;
}

const probed = new Set<string>();

/**
 * Looks for a transaction pooler in front of the pool, once, in the background, and turns
 * named statements off for the process when there is one (db/prepared.ts). A pool of one
 * client cannot be probed; an error (the pool closed, the database away) leaves things as they
 * are: the first statement that meets a pooler's prepared-statement error says so too.
 */
export function watchForPooler(pool: pg.Pool, url: string, max: number): void {
  if (urlSaysPooled(url)) return disablePreparedStatements();
  // One probe per URL and process: its pools all reach the same place.
  if (max < 2 || probed.has(url)) return;
  probed.add(url);
  void detectTransactionPooler(pool).then(
    (pooled) => {
      if (pooled) disablePreparedStatements();
    },
    () => undefined,
  );
}
