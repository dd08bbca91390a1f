// Survive the database (DESIGN §12): a connection that dies under an open transaction fails
// that transaction, and nothing else: no unhandled 'error' event takes the process down.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { withTransaction } from '../../src/db/transaction.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { pollUntil } from '../helpers/wait.js';
import { fixtureRegistry } from '../helpers/jobs.js';
import { killStragglers, startCli } from '../helpers/process.js';
import { freePort } from '../../src/support/net.js';

const fixture = useEngineFixture({});
let pool: Pool;
beforeEach(() => ({ pool } = fixture));
afterEach(killStragglers);

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

/** From now on, `port` leads to the test's Postgres (as a server coming back up would). */
async function forward(port: number, target: URL): Promise<Server> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => socket.destroy());
      socket.on('close', () => sockets.delete(socket));
    }
    client.pipe(upstream).pipe(client);
  });
  server.on('close', () => sockets.forEach((socket) => socket.destroy()));
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return server;
}

describe('a worker started while Postgres is down', () => {
  it('says so once, waits for it, and starts when it is back instead of exiting', async () => {
    const port = await freePort();
    const real = new URL(fixture.database.url);
    const down = new URL(real);
    down.port = String(port);
    const worker = startCli(['worker', '--engine', 'pgboss', '--registry', fixtureRegistry, '--database-url', down.toString()], { CUTOVER_LOG_LEVEL: 'info' });
    await pollUntil('the worker to say it is waiting', async () => worker.stderr().includes('trying again for up to 30 s') || worker.stdout().includes('trying again for up to 30 s'));
    const proxy = await forward(port, real);
    try {
      await pollUntil('the worker to start', async () => (worker.stdout() + worker.stderr()).includes('pg-boss worker started'), { timeoutMs: 30_000 });
      worker.kill('SIGTERM');
      expect((await worker.exited).code).toBe(0);
      expect((worker.stdout() + worker.stderr()).match(/trying again/g)).toHaveLength(1);
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
    }
  });
});
