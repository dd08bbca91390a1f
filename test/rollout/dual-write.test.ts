// A tracking row and its pg-boss job written as one statement (no BEGIN/COMMIT),
// still both or neither, including when pg-boss skips an id it already holds.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { clientTx } from '../../src/db/sql.js';
import { JobIdTakenError } from '../../src/support/errors.js';
import { composeInsert } from '../../src/rollout/dual-write.js';
import { useEngineFixture } from '../helpers/fixture.js';
import type { Producer } from '../helpers/engines.js';
import { countWhere } from '../helpers/jobs.js';

const fixture = useEngineFixture({ percent: 100 });
let pool: Pool;
let producer: Producer;
beforeEach(() => ({ pool, producer } = fixture));

const bossJobs = async (ids: string[]) =>
  Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM pgboss.job WHERE id = ANY($1::uuid[])`, [ids])).rows[0]!.n);

/** Every statement any connection sends while `action` runs (the producer's pg-boss is idle meanwhile). */
async function watchStatements(action: () => Promise<unknown>): Promise<string[]> {
  const statements: string[] = [];
  const { query } = pg.Client.prototype;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const config = args[0];
    statements.push(typeof config === 'string' ? config : String((config as { text?: unknown } | null)?.text ?? ''));
    return (query as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof query;
  try {
    await action();
  } finally {
    pg.Client.prototype.query = query;
  }
  return statements;
}

describe('enqueue writes the tracking row and the pg-boss job in one statement', () => {
  it('sends one statement and opens no transaction, and both writes land', async () => {
    await producer.manager.enqueue('test.noop', {});
    const statements = await watchStatements(() => producer.manager.enqueue('test.noop', {}));
    // Besides a read of the flags (the cache's, when it refreshes), one statement: no BEGIN, no COMMIT.
    expect(statements.filter((text) => !text.includes('FROM "RolloutFlag"'))).toEqual([expect.stringContaining('cutover_rows AS (INSERT INTO')]);
    expect(await countWhere(pool, `engine = 'PGBOSS'`)).toBe(2);
    expect(Number((await pool.query(`SELECT count(*) AS n FROM pgboss.job WHERE name = 'test.noop'`)).rows[0].n)).toBe(2);
  });

  it('writes nothing at all when pg-boss already holds one id of a batch: no row, no job, not even the others', async () => {
    const taken = randomUUID();
    await producer.boss.insert('test.noop', [{ id: taken, data: { earlier: true } }]);
    const ids = [randomUUID(), taken, randomUUID()];
    const attempt = producer.manager.enqueueMany('test.noop', ids.map((id) => ({ id, payload: {} })));
    await expect(attempt).rejects.toBeInstanceOf(JobIdTakenError);
    await expect(attempt).rejects.toMatchObject({ ids: [taken] });
    expect(await countWhere(pool, 'TRUE')).toBe(0);
    expect(await bossJobs(ids)).toBe(1); // the earlier one, untouched
    expect(producer.manager.fallbackCount).toBe(0);
  });

  it('in a caller\'s transaction, a taken id undoes only the enqueue: the caller\'s own write still commits', async () => {
    const taken = randomUUID();
    await producer.boss.insert('test.noop', [{ id: taken, data: {} }]);
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query(`INSERT INTO "DemoDelivery" ("jobId", engine) VALUES ('business-write', 'app')`);
      await expect(producer.manager.enqueue('test.noop', {}, { id: taken, tx: clientTx(client) })).rejects.toBeInstanceOf(JobIdTakenError);
      const fine = await producer.manager.enqueue('test.noop', {}, { tx: clientTx(client) });
      await client.query('COMMIT');
      expect(await countWhere(pool, 'TRUE')).toBe(1);
      expect(await bossJobs([fine.pgbossJobId!])).toBe(1);
      expect((await pool.query(`SELECT count(*)::int AS n FROM "DemoDelivery"`)).rows[0].n).toBe(1);
    } finally {
      client.release();
    }
  });

  it('recognises the statements pg-boss builds today, with and without NOTIFY, and nothing else', async () => {
    await producer.boss.createQueue('test.quiet', { notify: false });
    const captured: string[] = [];
    const capture = { executeSql: async (text: string) => (captured.push(text), { rows: [] }) };
    await producer.boss.insert('test.noop', [{ data: {} }], { db: capture, returnId: true });
    await producer.boss.insert('test.quiet', [{ data: {} }], { db: capture, returnId: true });
    expect(captured).toHaveLength(2);
    for (const text of captured) expect(composeInsert(text, 'SELECT 1')).toContain('cutover_rows AS (SELECT 1)');
    expect(composeInsert(captured[0]!.replace('WITH ins AS', 'WITH inserted AS'), 'SELECT 1')).toBeNull();
    expect(composeInsert(`INSERT INTO pgboss.job (id) VALUES ($1)`, 'SELECT 1')).toBeNull();
    expect(composeInsert(`${captured[0]} ; DELETE FROM x`, 'SELECT 1')).toBeNull();
  });
});

