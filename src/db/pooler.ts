import pg from 'pg';
import { disablePreparedStatements } from './prepared.js';

async function backendPid(client: pg.Client): Promise<number> {
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
 * Whether a transaction pooler stands between this URL and Postgres: two clients of its own
 * (not a pool's, so a busy pool is never kept waiting by the probe), both connected, each asks
 * for its backend's pid outside a transaction. Directly, two connected clients are two sessions
 * and never share a pid; through a transaction pooler the second is answered by the server
 * connection the first just gave back (PgBouncer hands out the most recently used one), or the
 * first's next statement by another one. Tried `attempts` times, since a busy pooler may hand
 * out other connections by chance.
 */
export async function detectTransactionPooler(connectionString: string, attempts = 3): Promise<boolean> {
  const clients = [0, 1].map(() => new pg.Client({ connectionString, application_name: 'cutover-pooler-probe', connectionTimeoutMillis: 10_000 }));
  for (const client of clients) client.on('error', () => undefined);
  try {
    await Promise.all(clients.map((client) => client.connect()));
    const [first, second] = clients as [pg.Client, pg.Client];
    for (let attempt = 0; attempt < attempts; attempt += 1) {
      const a = await backendPid(first);
      const b = await backendPid(second);
      if (a === b) return true;
      // The second holds a server connection in a transaction while the first asks again.
      await second.query('BEGIN');
      const [again] = await Promise.all([backendPid(first), second.query('SELECT 1').then(() => second.query('COMMIT'))]);
      if (again !== a) return true;
    }
    return false;
  } finally {
    await Promise.all(clients.map((client) => client.end().catch(() => undefined)));
  }
}

const probed = new Set<string>();

/**
 * Looks for a transaction pooler at the URL, once per process, in the background, and turns
 * named statements off for the process when there is one (db/prepared.ts). An error (the
 * database away) leaves things as they are: the first statement that meets a pooler's
 * prepared-statement error says so too (rollout/manager.ts).
 */
export function watchForPooler(url: string): void {
  if (urlSaysPooled(url)) return disablePreparedStatements();
  // One probe per URL and process: its pools all reach the same place.
  if (probed.has(url)) return;
  probed.add(url);
  void detectTransactionPooler(url).then(
    (pooled) => {
      if (pooled) disablePreparedStatements();
    },
    () => undefined,
  );
}
