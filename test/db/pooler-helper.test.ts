// The PgBouncer the pooled tests run behind: a real transaction pooler, so two statements of one
// client outside a transaction can be answered by different server connections, and it refuses
// the startup parameters it does not know, as its defaults do.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { startPgBouncer, type PgBouncer } from '../helpers/pgbouncer.js';

let bouncer: PgBouncer;
let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
  bouncer = await startPgBouncer({ poolSize: 2 });
});
afterAll(async () => {
  await bouncer?.stop();
  await database?.drop();
});

describe('the test PgBouncer', () => {
  it('runs in transaction mode: one client, statements answered by different backends', async () => {
    const holders = await Promise.all([0, 1].map(async () => {
      const client = new pg.Client({ connectionString: bouncer.urlFor(database.url) });
      await client.connect();
      return client;
    }));
    const [client, other] = holders as [pg.Client, pg.Client];
    try {
      const pids = new Set<number>();
      // The other client keeps taking a server connection between this one's statements, so the
      // pool of 2 hands this one a different backend sooner or later.
      for (let i = 0; i < 20 && pids.size < 2; i += 1) {
        pids.add((await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid);
        await other.query('BEGIN');
        await Promise.all([client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid').then((r) => pids.add(r.rows[0]!.pid)), other.query('COMMIT')]);
      }
      expect(pids.size).toBeGreaterThan(1);
    } finally {
      await Promise.all(holders.map((c) => c.end()));
    }
  });

  it('refuses startup options, as PgBouncer does by default', async () => {
    const client = new pg.Client({ connectionString: bouncer.urlFor(database.url), options: '-c TimeZone=UTC' });
    client.on('error', () => undefined);
    await expect(client.connect()).rejects.toThrow(/unsupported startup parameter/);
    await client.end().catch(() => undefined);
  });
});
