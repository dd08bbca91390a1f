import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { loadRegistry, type JobRegistry } from '../../src/jobs/registry.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import type { PlanContext } from '../../src/plans/plan-runner.js';
import { quietLog, setPercent, startProducer, type Producer } from './engines.js';
import { fixtureRegistry, testPool } from './jobs.js';
import { startPgBouncer, type PgBouncer } from './pgbouncer.js';

export interface DatabaseFixture {
  database: TestDatabase;
  pool: Pool;
  registry: JobRegistry;
}

export interface EngineFixture extends DatabaseFixture {
  producer: Producer;
}

/**
 * Per test: a fresh migrated database and a pool, over the fixture job registry (or
 * `registry`, a module path); both closed afterwards.
 */
export function useDatabaseFixture(registry: string = fixtureRegistry): DatabaseFixture {
  const fixture = {} as DatabaseFixture;
  beforeAll(async () => {
    fixture.registry = await loadRegistry(registry);
  });
  beforeEach(async () => {
    fixture.database = await createTestDatabase();
    fixture.pool = testPool(fixture.database.url);
  });
  afterEach(async () => {
    await fixture.pool.end();
    await fixture.database.drop();
  });
  return fixture;
}

/**
 * Per test: the database fixture, plus an application-like producer (pg-boss client, flag
 * cache, RolloutManager) over its registry; all closed afterwards.
 */
export function useEngineFixture(options: { ttlMs?: number; percent?: number; registry?: string } = {}): EngineFixture {
  const fixture = useDatabaseFixture(options.registry) as EngineFixture;
  beforeEach(async () => {
    fixture.producer = await startProducer(fixture.database.url, fixture.pool, fixture.registry, options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs });
    if (options.percent !== undefined) await setPercent(fixture.pool, options.percent);
  });
  afterEach(async () => {
    await fixture.producer.close();
  });
  return fixture;
}

/** A plan runner's context over the engine fixture, as the plan tests drive it (settles in 200 ms). */
export function planContextOf(fixture: EngineFixture): PlanContext {
  return { pool: fixture.pool, databaseUrl: fixture.database.url, registry: fixture.registry, log: quietLog, actor: 'test', boss: fixture.producer.boss, settleMs: 200 };
}

export interface PooledDatabaseFixture {
  database: TestDatabase;
  bouncer: PgBouncer;
  /** The database's own URL through PgBouncer in transaction mode. */
  pooledUrl: string;
  /** A pool on the database directly, for the test's own reads. */
  direct: Pool;
}

/** Per file: a fresh migrated database, a real PgBouncer in front of it, and a direct pool; all closed afterwards. */
export function usePooledDatabase(): PooledDatabaseFixture {
  const fixture = {} as PooledDatabaseFixture;
  beforeAll(async () => {
    fixture.database = await createTestDatabase();
    fixture.bouncer = await startPgBouncer();
    fixture.pooledUrl = fixture.bouncer.urlFor(fixture.database.url);
    fixture.direct = testPool(fixture.database.url);
  });
  afterAll(async () => {
    await fixture.direct?.end();
    await fixture.bouncer?.stop();
    await fixture.database?.drop();
  });
  return fixture;
}
