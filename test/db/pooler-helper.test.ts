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
      // While the other client holds a server connection in a transaction, this one's next
      // statement is answered by the pool's other backend (no race: the other has its server
      // before this one asks); which backend answered this one before varies, so a few rounds.
      const pidOf = async (c: pg.Client) => (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
      for (let round = 0; round < 10 && pids.size < 2; round += 1) {
        const first = await pidOf(client);
        await other.query('BEGIN');
        const held = await pidOf(other);
        const second = await pidOf(client);
        await other.query('COMMIT');
        expect(second).not.toBe(held);
        pids.clear();
        pids.add(first).add(second);
      }
      expect(pids.size).toBe(2);
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
