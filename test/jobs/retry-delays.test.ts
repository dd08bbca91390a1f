import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import type { JobRegistry } from '../../src/jobs/registry.js';
import { LegacyRunner } from '../../src/legacy/runner.js';
import type { TestDatabase } from '../helpers/database.js';
import { quietLog, type Producer, withBossWorker } from '../helpers/engines.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { recordStatusHistory, statusHistory, type StatusChange } from '../helpers/history.js';
import { addLegacyJobs, countWhere, jobRows, suiteRegistry } from '../helpers/jobs.js';
import { pollUntil } from '../helpers/wait.js';

// Retries that wait: a fixed delay, exponential backoff, and a RateLimitError with and without
// a Retry-After hint, on both engines; and a pg-boss job that overruns its timeout. The job
// types are in test/fixtures/suite-registry.mjs.

const fixture = useEngineFixture({ percent: 100, registry: suiteRegistry });
let database: TestDatabase;
let pool: Pool;
let registry: JobRegistry;
let producer: Producer;
beforeEach(() => ({ database, pool, registry, producer } = fixture));

/** Seconds from `a` to `b`. */
const seconds = (a: Date, b: Date) => (b.getTime() - a.getTime()) / 1000;

interface ChainRow {
  attempts: number;
  status: string;
  runAfter: Date;
  startedAt: Date;
  completedAt: Date;
}

/** A legacy retry chain's rows, attempt by attempt. */
async function chain(id: string): Promise<ChainRow[]> {
  const { rows } = await pool.query<ChainRow>(
    `SELECT attempts, status, "runAfter", "startedAt", "completedAt" FROM "Job" WHERE id = $1 OR "originalJobId" = $1 ORDER BY attempts`,
    [id],
  );
  return rows;
}

describe('retry delays on the legacy engine', () => {
  it('a retry row is due exactly its delay after the failure, and is not claimed before', async () => {
    const [fixed] = await addLegacyJobs(pool, 'suite.fixed-delay', [{ times: 1 }], { maxAttempts: 4 });
    const [backoff] = await addLegacyJobs(pool, 'suite.backoff', [{ times: 2 }], { maxAttempts: 4 });
    const [limited] = await addLegacyJobs(pool, 'suite.rate-limited', [{ times: 1 }], { maxAttempts: 4 });
    const [hinted] = await addLegacyJobs(pool, 'suite.rate-limited-hint', [{ times: 1 }], { maxAttempts: 4 });

    const controller = new AbortController();
    const runner = new LegacyRunner({ pool, databaseUrl: database.url, registry, log: quietLog, pollMs: 20 });
    const done = runner.run(controller.signal);
    await pollUntil('every chain to finish', async () => (await countWhere(pool, `status IN ('PENDING', 'RUNNING')`)) === 0 && (await countWhere(pool, `status = 'COMPLETED'`)) === 4, {
      timeoutMs: 45_000,
    });
    controller.abort();
    expect(await done).toMatchObject({ completed: 4, retried: 5 });

    // Each retry's due time minus the failure it follows: the delay the job's policy gives.
    const expected: [string, number[]][] = [
      [fixed!, [2]], // fixed 2 s
      [backoff!, [1, 2]], // 1 s, doubling
      [limited!, [4]], // rate-limited, no hint: 4 × the 1 s delay
      [hinted!, [3]], // rate-limited, Retry-After 3 s
    ];
    for (const [id, delays] of expected) {
      const rows = await chain(id);
      expect(rows.map((row) => [row.attempts, row.status])).toEqual([...delays.map((_, i) => [i + 1, 'FAILED']), [delays.length + 1, 'COMPLETED']]);
      for (const [i, delay] of delays.entries()) {
        const [failed, retry] = [rows[i]!, rows[i + 1]!];
        expect(seconds(failed.completedAt, retry.runAfter), `${id} retry ${i + 1}`).toBeCloseTo(delay, 2);
        // Not claimed before it was due.
        expect(retry.startedAt.getTime(), `${id} retry ${i + 1} started early`).toBeGreaterThanOrEqual(retry.runAfter.getTime());
      }
    }
  });
});

/**
 * Each failed attempt that pg-boss will retry, from a pg-boss job's mirror history: the
 * transaction that failed it (RUNNING to PENDING, in the same transaction as pg-boss's own
 * fail, so at the same now()) and the one that started the next attempt.
 */
function retries(history: StatusChange[]): { failedAt: Date; nextRunAt: Date }[] {
  const found: { failedAt: Date; nextRunAt: Date }[] = [];
  for (let i = 1; i + 1 < history.length; i += 1) {
    if (history[i - 1]!.status === 'RUNNING' && history[i]!.status === 'PENDING' && history[i + 1]!.status === 'RUNNING') {
      found.push({ failedAt: history[i]!.txAt, nextRunAt: history[i + 1]!.txAt });
    }
  }
  return found;
}

async function bossTimes(name: string, id: string): Promise<{ start_after: Date; started_on: Date; state: string; retry_count: number }> {
  const { rows } = await pool.query(`SELECT start_after, started_on, state, retry_count FROM pgboss.job WHERE name = $1 AND id = $2`, [name, id]);
  return rows[0];
}

const withWorker = <T>(types: string[], run: () => Promise<T>) => withBossWorker({ url: database.url, pool, registry }, run, types);

describe('retry delays on pg-boss', () => {
  it('a failed attempt waits its delay (fixed, backoff, rate limit with and without a hint) before it runs again', async () => {
    await recordStatusHistory(pool);
    const jobs = {
      fixed: (await producer.manager.enqueue('suite.fixed-delay', { times: 1 })).id,
      backoff: (await producer.manager.enqueue('suite.backoff', { times: 2 })).id,
      limited: (await producer.manager.enqueue('suite.rate-limited', { times: 1 })).id,
      hinted: (await producer.manager.enqueue('suite.rate-limited-hint', { times: 1 })).id,
    };
    await withWorker(['suite.fixed-delay', 'suite.backoff', 'suite.rate-limited', 'suite.rate-limited-hint'], () =>
      pollUntil('every job to complete', async () => (await countWhere(pool, `status = 'COMPLETED'`)) === 4, { timeoutMs: 45_000 }),
    );

    // [type, job, least and most seconds each retry may wait]. pg-boss's backoff is jittered:
    // delay × [1, 2) for the first retry, × [2, 4) for the second.
    const cases: [string, string, [number, number][]][] = [
      ['suite.fixed-delay', jobs.fixed, [[2, 2]]],
      ['suite.backoff', jobs.backoff, [[1, 2], [2, 4]]],
      ['suite.rate-limited', jobs.limited, [[4, 4]]],
      ['suite.rate-limited-hint', jobs.hinted, [[3, 3]]],
    ];
    // Timestamps are stored to the millisecond.
    const ms = 0.002;
    for (const [type, id, bounds] of cases) {
      const history = await statusHistory(pool, id);
      expect(history.at(-1)).toMatchObject({ status: 'COMPLETED', attempts: bounds.length + 1 });
      expect(history.map((h) => h.status)).not.toContain('FAILED');
      const waits = retries(history);
      expect(waits, `${type} retries`).toHaveLength(bounds.length);
      for (const [i, [least]] of bounds.entries()) {
        expect(seconds(waits[i]!.failedAt, waits[i]!.nextRunAt), `${type} retry ${i + 1} ran early`).toBeGreaterThanOrEqual(least - ms);
      }
      // The last retry's due time, as pg-boss keeps it: within the bounds, and not started before it.
      const boss = await bossTimes(type, id);
      expect(boss).toMatchObject({ state: 'completed', retry_count: bounds.length });
      const [least, most] = bounds.at(-1)!;
      const due = seconds(waits.at(-1)!.failedAt, boss.start_after);
      expect(due, `${type} due`).toBeGreaterThanOrEqual(least - ms);
      expect(due, `${type} due`).toBeLessThanOrEqual(most + ms);
      expect(boss.started_on.getTime()).toBeGreaterThanOrEqual(boss.start_after.getTime());
    }
  });
});

describe('a pg-boss job past its timeout', () => {
  it('fails after its timeout even when the handler ignores the abort, is retried, and fails for good', async () => {
    await recordStatusHistory(pool);
    const { id } = await producer.manager.enqueue('suite.overrun', { ms: 15_000 });
    await withWorker(['suite.overrun'], () => pollUntil('the final failure', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'FAILED', { timeoutMs: 30_000 }));
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ status: 'FAILED', attempts: 2, error: 'timed out after 1s' });
    expect(await bossTimes('suite.overrun', id)).toMatchObject({ state: 'failed', retry_count: 1 });

    const history = await statusHistory(pool, id);
    expect(history.map((h) => [h.status, h.attempts])).toEqual([
      ['PENDING', 0],
      ['RUNNING', 1],
      ['PENDING', 1],
      ['RUNNING', 2],
      ['FAILED', 2],
    ]);
    // Each attempt ended about its 1 s timeout after it started, not after the handler's 15 s.
    for (const start of [1, 3]) {
      const ran = seconds(history[start]!.at, history[start + 1]!.at);
      expect(ran).toBeGreaterThanOrEqual(0.9);
      expect(ran).toBeLessThan(10);
    }
  });
});
