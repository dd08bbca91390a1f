// Survive the database (DESIGN §12): a connection that dies under an open transaction fails
// that transaction, and nothing else: no unhandled 'error' event takes the process down.
import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { withTransaction } from '../../src/db/transaction.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { pollUntil } from '../helpers/wait.js';

const fixture = useEngineFixture({});
let pool: Pool;
beforeEach(() => ({ pool } = fixture));

describe('a transaction whose connection dies', () => {
  it('rejects, destroys the broken client, and the pool goes on', async () => {
    let errorEvents = 0;
    const seen = (error: unknown) => (errorEvents += error instanceof Error ? 1 : 0);
    process.on('uncaughtException', seen);
    try {
      await expect(
        withTransaction(pool, async (client) => {
          const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
          // Another session ends this one, as a Postgres restart would, while it sits in its transaction.
          await fixture.pool.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
          await pollUntil('the server to close the connection', async () => client.query('SELECT 1').then(() => false, () => true));
          await client.query('SELECT 1');
        }),
      ).rejects.toThrow();
    } finally {
      process.off('uncaughtException', seen);
    }
    expect(errorEvents).toBe(0);
    // The pool hands out working clients afterwards.
    expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    expect(await withTransaction(pool, async (client) => (await client.query('SELECT 2 AS two')).rows)).toEqual([{ two: 2 }]);
  });
});
