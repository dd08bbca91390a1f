import { afterEach, beforeAll, beforeEach } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { loadRegistry, type JobRegistry } from '../../src/jobs/registry.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { setPercent, startProducer, type Producer } from './engines.js';
import { fixtureRegistry, testPool } from './jobs.js';

export interface EngineFixture {
  database: TestDatabase;
  pool: Pool;
  registry: JobRegistry;
  producer: Producer;
}

/**
 * Per test: a fresh migrated database, a pool, and an application-like producer (pg-boss
 * client, flag cache, RolloutManager) over the fixture job registry (or `registry`, a module
 * path); all closed afterwards.
 */
export function useEngineFixture(options: { ttlMs?: number; percent?: number; registry?: string } = {}): EngineFixture {
  const fixture = {} as EngineFixture;
  beforeAll(async () => {
    fixture.registry = await loadRegistry(options.registry ?? fixtureRegistry);
  });
  beforeEach(async () => {
    fixture.database = await createTestDatabase();
    fixture.pool = testPool(fixture.database.url);
    fixture.producer = await startProducer(fixture.database.url, fixture.pool, fixture.registry, options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs });
    if (options.percent !== undefined) await setPercent(fixture.pool, options.percent);
  });
  afterEach(async () => {
    await fixture.producer.close();
    await fixture.pool.end();
    await fixture.database.drop();
  });
  return fixture;
}
