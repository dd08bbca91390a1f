// What reconcile's cheaper plans must not change: the outcomes (percentiles included) are the
// very numbers percentile_cont gave, and orphans are found alike queue by queue and all at once.
import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool, PoolClient } from '../../src/db/pool.js';
import type { JobRegistry } from '../../src/jobs/registry.js';
import { compareOutcomes, engineOutcome } from '../../src/reconcile/compare.js';
import { findInconsistencies } from '../../src/reconcile/reconcile.js';
import { GENERIC_TABLE } from '../../src/table/table.js';
import { useDatabaseFixture, useEngineFixture } from '../helpers/fixture.js';
import type { Producer } from '../helpers/engines.js';

const WINDOW = 86_400;

// The outcomes statement before it was reworked, verbatim for the generic table: the oracle.
const PERCENTILE_CONT = `
  WITH retried AS (
    SELECT DISTINCT j."originalJobId" AS root FROM "Job" j WHERE j."originalJobId" IS NOT NULL AND j.type = ANY($1::text[]) AND j."createdAt" >= (now() AT TIME ZONE 'UTC') - make_interval(secs => $2::float8)
  ),
  singles AS (
    SELECT j.type AS type, j.engine, j.status = 'COMPLETED' AS succeeded, j.status IN ('PENDING', 'RUNNING') AS in_flight,
           j.attempts AS attempts, j."createdAt" AS created, CASE WHEN j.status = 'COMPLETED' THEN j."completedAt" END AS completed
      FROM "Job" j
     WHERE j.type = ANY($1::text[]) AND j."createdAt" >= (now() AT TIME ZONE 'UTC') - make_interval(secs => $2::float8) AND j."originalJobId" IS NULL AND NOT EXISTS (SELECT 1 FROM retried r WHERE r.root = j.id)
  ),
  chains AS (
    SELECT j.type AS type,
           (array_agg(j.engine ORDER BY j."createdAt" DESC, j.attempts DESC))[1] AS engine,
           bool_or(j.status = 'COMPLETED') AS succeeded,
           bool_or(j.status IN ('PENDING', 'RUNNING')) AS in_flight,
           max(j.attempts) AS attempts,
           min(j."createdAt") AS created,
           max(j."completedAt") FILTER (WHERE j.status = 'COMPLETED') AS completed
      FROM "Job" j JOIN retried r ON r.root = COALESCE(j."originalJobId", j.id)
     WHERE j.type = ANY($1::text[]) AND j."createdAt" >= (now() AT TIME ZONE 'UTC') - make_interval(secs => $2::float8)
     GROUP BY r.root, 1
  ),
  jobs AS (SELECT * FROM singles UNION ALL SELECT * FROM chains)
  SELECT CASE WHEN $3::boolean THEN type ELSE '*' END AS type, engine::text AS engine, count(*)::int AS jobs, count(*) FILTER (WHERE succeeded)::int AS succeeded,
         avg(attempts)::float8 AS mean_attempts,
         percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM completed - created)) FILTER (WHERE succeeded) AS percentiles
    FROM jobs WHERE NOT in_flight
   GROUP BY 1, 2`;

interface Row {
  type: string;
  engine: string;
}

const byGroup = <T extends Row>(rows: T[]): T[] => [...rows].sort((a, b) => `${a.type}/${a.engine}`.localeCompare(`${b.type}/${b.engine}`));

/**
 * Rows of every kind the outcomes tell apart, in two types and both engines: ties and distinct
 * millisecond latencies, latencies near two days (where date_part and EXTRACT part ways) and
 * negative ones, failures, jobs in flight, a success without a completion time, rows outside
 * the window, and retry chains (finished, failed, in flight, switching engines).
 */
async function seedOutcomes(pool: Pool): Promise<void> {
  await pool.query(`
    INSERT INTO "Job" (id, type, payload, status, attempts, "maxAttempts", engine, "createdAt", "updatedAt", "completedAt")
    SELECT gen_random_uuid(), CASE WHEN i % 2 = 0 THEN 'test.noop' ELSE 'test.record' END, '{}',
           (CASE WHEN i % 13 = 0 THEN 'RUNNING' WHEN i % 11 = 0 THEN 'FAILED' WHEN i % 19 = 0 THEN 'PENDING' ELSE 'COMPLETED' END)::"JobStatus",
           1 + i % 3, 3, (CASE WHEN i % 3 = 0 THEN 'LEGACY' ELSE 'PGBOSS' END)::"JobEngine", created, created,
           CASE WHEN i % 17 = 0 THEN NULL
                WHEN i % 41 = 0 THEN created + interval '1 day 23:59' + (ARRAY[2, 4, 7, 9, 18, 20, 29, 31, 34, 40, 42, 45, 47, 56, 58])[1 + i % 15] * interval '1 millisecond'
                WHEN i % 211 = 0 THEN created - (i % 7) * interval '1 second'
                WHEN i % 5 = 0 THEN created + interval '1.5 second'
                ELSE created + ((i * 7919) % 60000) * interval '1 millisecond' END
      FROM generate_series(1, 3000) AS i,
           LATERAL (SELECT (now() AT TIME ZONE 'UTC') - CASE WHEN i % 23 = 0 THEN interval '3 days' ELSE (i % 7200) * interval '1 second' END AS created) c`);
  // Chains: a failed first run and one or two retries, the last on either engine.
  await pool.query(`
    WITH roots AS (
      INSERT INTO "Job" (id, type, payload, status, attempts, "maxAttempts", engine, "createdAt", "updatedAt", "completedAt")
      SELECT gen_random_uuid(), CASE WHEN i % 2 = 0 THEN 'test.noop' ELSE 'test.record' END, jsonb_build_object('i', i), 'FAILED', 1, 3, 'LEGACY',
             (now() AT TIME ZONE 'UTC') - i * interval '37 seconds', now() AT TIME ZONE 'UTC', (now() AT TIME ZONE 'UTC') - i * interval '37 seconds' + interval '0.25 second'
        FROM generate_series(1, 120) AS i
      RETURNING id, type, "createdAt", (payload->>'i')::int AS i
    )
    INSERT INTO "Job" (id, type, payload, status, attempts, "maxAttempts", engine, "originalJobId", "createdAt", "updatedAt", "completedAt")
    SELECT gen_random_uuid(), r.type, '{}',
           (CASE WHEN r.i % 9 = 0 AND n = 2 THEN 'PENDING' WHEN r.i % 4 = 0 THEN 'FAILED' WHEN n < 1 + r.i % 2 THEN 'FAILED' ELSE 'COMPLETED' END)::"JobStatus",
           1 + n, 3, (CASE WHEN r.i % 3 = 0 THEN 'PGBOSS' ELSE 'LEGACY' END)::"JobEngine", r.id,
           r."createdAt" + n * interval '2 seconds', now() AT TIME ZONE 'UTC', r."createdAt" + n * interval '2 seconds' + (r.i % 5) * interval '0.333 second'
      FROM roots r, generate_series(1, 1 + r.i % 2) AS n`);
}

/** A pool that records the outcomes statements its clients run, so their raw rows can be compared. */
function spying(pool: Pool): { pool: Pool; statements: { text: string; values: unknown[] }[] } {
  const statements: { text: string; values: unknown[] }[] = [];
  const bound = <T extends object>(target: T, key: string | symbol): unknown => {
    const value: unknown = Reflect.get(target, key, target);
    return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
  };
  const client = (real: PoolClient): PoolClient =>
    new Proxy(real, {
      get(target, key) {
        if (key !== 'query') return bound(target, key);
        return (text: unknown, values?: unknown[]) => {
          if (typeof text === 'string' && text.includes('WITH retried')) statements.push({ text, values: values ?? [] });
          return (target.query as (text: unknown, values?: unknown[]) => unknown)(text, values);
        };
      },
    });
  const spy = new Proxy(pool, {
    get(target, key) {
      return key === 'connect' ? async () => client(await target.connect()) : bound(target, key);
    },
  });
  return { pool: spy, statements };
}

describe('outcomes', () => {
  const fixture = useDatabaseFixture();
  let pool: Pool;
  beforeEach(() => ({ pool } = fixture));

  it('are exactly what percentile_cont and avg give, per type and over all types', async () => {
    await seedOutcomes(pool);
    const types = ['test.noop', 'test.record'];
    const { pool: spy, statements } = spying(pool);
    const comparison = await compareOutcomes(spy, GENERIC_TABLE, types, WINDOW, 0);
    const legacy = await engineOutcome(spy, GENERIC_TABLE, 'LEGACY', types, WINDOW);
    expect(statements).toHaveLength(2);

    for (const [index, perType] of [true, false].entries()) {
      const expected = byGroup((await pool.query<Row>(PERCENTILE_CONT, [types, WINDOW, perType])).rows);
      const statement = statements[index]!;
      const actual = byGroup((await pool.query<Row>(statement.text, statement.values)).rows);
      // Bit for bit: the same float8s, not merely close ones.
      expect(actual).toEqual(expected);
      expect(expected.length).toBe(perType ? 4 : 2);
    }

    // The seed has what makes them differ: ties, spread, past a day, chains on both engines.
    const expected = byGroup((await pool.query<Row & { jobs: number; percentiles: number[] }>(PERCENTILE_CONT, [types, WINDOW, true])).rows);
    for (const row of expected) {
      const side = comparison.find((c) => c.type === row.type)![row.engine === 'LEGACY' ? 'legacy' : 'pgboss'];
      expect(side.jobs).toBe(row.jobs);
      expect(side.latencySeconds).toEqual({ p50: round(row.percentiles[0]!), p95: round(row.percentiles[1]!), p99: round(row.percentiles[2]!) });
      expect(new Set(row.percentiles).size).toBe(3);
    }
    // Past a day date_part's float8 can be a bit off EXTRACT's: the seed's are, and p99 is among them.
    const datePart = (await pool.query<Row>(PERCENTILE_CONT.replace('ORDER BY EXTRACT(EPOCH FROM completed - created)', `ORDER BY date_part('epoch', completed - created)`), [types, WINDOW, true])).rows;
    expect(byGroup(datePart)).not.toEqual(expected);
    expect(expected.every((row) => row.percentiles[2]! > 86_400)).toBe(true);
    expect(legacy.jobs).toBe(expected.filter((r) => r.engine === 'LEGACY').reduce((sum, r) => sum + r.jobs, 0));
  });

  it('over no finished job: none, and no percentiles where nothing succeeded', async () => {
    expect(await compareOutcomes(pool, GENERIC_TABLE, ['test.noop'], WINDOW)).toEqual([]);
    await pool.query(`
      INSERT INTO "Job" (id, type, payload, status, attempts, "maxAttempts", engine, "createdAt", "updatedAt")
      SELECT gen_random_uuid(), 'test.noop', '{}', 'FAILED', 3, 3, 'PGBOSS', now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC' FROM generate_series(1, 3)`);
    const outcome = await engineOutcome(pool, GENERIC_TABLE, 'PGBOSS', ['test.noop'], WINDOW);
    expect(outcome).toMatchObject({ jobs: 3, succeeded: 0, meanAttempts: 3, deadLetters: 3, latencySeconds: { p50: null, p95: null, p99: null } });
  });
});

function round(value: number): number {
  return Number(value.toFixed(3));
}

describe('orphans', () => {
  const fixture = useEngineFixture({ percent: 100 });
  let pool: Pool;
  let registry: JobRegistry;
  let producer: Producer;
  beforeEach(() => ({ pool, registry, producer } = fixture));

  // More queues with jobs than are merged one by one (four), so both plans are taken.
  const busy = ['test.noop', 'test.nonretryable', 'test.sleep', 'test.hang', 'test.crash', 'test.stall'];

  const orphansOf = async (types: string[]) => {
    const findings = await findInconsistencies({ pool, registry, graceSeconds: 0 }, types);
    return { count: findings.orphan.count, ids: findings.orphan.sample.map((f) => `${f.type}/${f.id}`).sort() };
  };

  it('are the same found queue by queue as all at once, each once, never in a type finalized without tracking', async () => {
    const expected: string[] = [];
    for (const type of busy) {
      await producer.manager.enqueueMany(type, Array.from({ length: 3 }, () => ({ payload: { ms: 0 } })));
      expected.push(`${type}/${await producer.boss.send(type, { from: 'elsewhere' })}`);
    }
    // Jobs of a type finalized with tracking off have no rows by design.
    await pool.query(`INSERT INTO "RolloutFinal" ("jobType", tracking, "finalizedBy") VALUES ('test.nul-result', false, 'test')`);
    await producer.boss.send('test.nul-result', {});

    const all = await orphansOf([...busy, 'test.nul-result']);
    expect(all).toEqual({ count: busy.length, ids: expected.sort() });
    const oneByOne = await Promise.all(busy.map((type) => orphansOf([type])));
    expect(oneByOne.flatMap((found) => found.ids).sort()).toEqual(expected);
    expect(await orphansOf(busy.slice(0, 4))).toMatchObject({ count: 4 });
    expect(await orphansOf(['test.noop', 'test.noop', 'test.nul-result'])).toEqual({ count: 1, ids: expected.filter((id) => id.startsWith('test.noop/')) });
  });
});
