// Leases (state/leases.ts), the locks of long commands where no session can hold them: a dead
// holder's lease is taken over once it expired, never before, and two takers racing for an
// expired lease cannot both get it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { openLockHolder, type LockHolder } from '../../src/state/leases.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { testPool } from '../helpers/jobs.js';
import { pollUntil } from '../helpers/wait.js';

let database: TestDatabase;
let pool: Pool;
beforeAll(async () => {
  database = await createTestDatabase();
  pool = testPool(database.url);
});
afterAll(async () => {
  await pool?.end();
  await database?.drop();
});

const key = { space: 'cutover.test', name: 'x' };
const lease = (options: { ttlSeconds?: number; renewMs?: number } = {}) => openLockHolder(database.url, { applicationName: 'cutover-test', kind: 'lease', ...options });

/** What a holder killed with -9 leaves: its row, which nobody renews. */
async function deadHolder(mode: 'shared' | 'exclusive', expiresInSeconds: number): Promise<void> {
  await pool.query(`INSERT INTO "CutoverLease" (space, name, holder, mode, "expiresAt") VALUES ($1, $2, 'dead', $3, now() + make_interval(secs => $4))`, [
    key.space,
    key.name,
    mode,
    expiresInSeconds,
  ]);
}

async function rows(): Promise<{ holder: string; mode: string }[]> {
  return (await pool.query<{ holder: string; mode: string }>(`SELECT holder, mode FROM "CutoverLease" ORDER BY holder`)).rows;
}

describe('leases', () => {
  it('shared beside shared, exclusive alone; released on exit', async () => {
    const [a, b, c] = await Promise.all([lease(), lease(), lease()]);
    try {
      expect(await a!.tryTake(key, 'shared')).toBe(true);
      expect(await b!.tryTake(key, 'shared')).toBe(true);
      expect(await c!.tryTake(key, 'exclusive')).toBe(false);
      await a!.release();
      expect(await c!.tryTake(key, 'exclusive')).toBe(false);
      await b!.release();
      expect(await c!.tryTake(key, 'exclusive')).toBe(true);
      expect((await rows()).map((row) => row.mode)).toEqual(['exclusive']);
    } finally {
      await Promise.all([a, b, c].map((holder) => holder!.release()));
    }
    expect(await rows()).toEqual([]);
  });

  it("a dead holder's lease blocks until it expires, then the next taker gets it", async () => {
    await deadHolder('exclusive', 1.5);
    const next = await lease();
    try {
      expect(await next.tryTake(key, 'shared')).toBe(false);
      await pollUntil('the dead lease to expire and be taken over', () => next.tryTake(key, 'shared'), { timeoutMs: 5000, intervalMs: 100 });
      expect((await rows()).map((row) => row.holder)).toEqual([next.holder]);
    } finally {
      await next.release();
    }
  });

  it('renews while held, so a live lease does not expire under its holder', async () => {
    const holder = await lease({ ttlSeconds: 1, renewMs: 200 });
    const other = await lease();
    try {
      expect(await holder.tryTake(key, 'exclusive')).toBe(true);
      // Three TTLs: without renewal the other taker would have it by then.
      const until = Date.now() + 3000;
      while (Date.now() < until) {
        expect(await other.tryTake(key, 'exclusive')).toBe(false);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    } finally {
      await holder.release();
      await other.release();
    }
  });

  it('takers racing for an expired exclusive lease: exactly one gets it', async () => {
    for (let round = 0; round < 10; round += 1) {
      await deadHolder('exclusive', -1);
      const takers: LockHolder[] = await Promise.all(Array.from({ length: 4 }, () => lease()));
      try {
        const won = await Promise.all(takers.map((taker) => taker.tryTake(key, 'exclusive')));
        expect(won.filter(Boolean)).toHaveLength(1);
        expect(await rows()).toHaveLength(1);
      } finally {
        await Promise.all(takers.map((taker) => taker.release()));
      }
    }
  });

  it('a session holder and a lease holder keep each other out', async () => {
    const session = await openLockHolder(database.url, { applicationName: 'cutover-test', kind: 'session' });
    const leased = await lease();
    try {
      expect(await session.tryTake(key, 'exclusive')).toBe(true);
      expect(await leased.tryTake(key, 'shared')).toBe(false);
      await session.release();
      expect(await leased.tryTake(key, 'shared')).toBe(true);
      const again = await openLockHolder(database.url, { applicationName: 'cutover-test', kind: 'session' });
      try {
        expect(await again.tryTake(key, 'exclusive')).toBe(false);
        expect(await again.tryTake(key, 'shared')).toBe(true);
      } finally {
        await again.release();
      }
    } finally {
      await session.release();
      await leased.release();
    }
  });
});
