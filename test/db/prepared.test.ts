// Prepared statements live on a connection until it closes, so how many a process makes must
// be bounded, whatever sizes of batch its callers send.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPool, type Pool } from '../../src/db/pool.js';
import { MAX_PREPARED_TEXTS } from '../../src/db/prepared.js';
import type { TestDatabase } from '../helpers/database.js';
import { setPercent, startProducer, type Producer } from '../helpers/engines.js';
import { useDatabaseFixture } from '../helpers/fixture.js';
import { countWhere } from '../helpers/jobs.js';

const fixture = useDatabaseFixture();
let database: TestDatabase;
let onePool: Pool;
let producer: Producer;
beforeEach(async () => {
  ({ database } = fixture);
  // One connection: every statement the producer prepares is on the session we then inspect.
  onePool = createPool(database.url, { max: 1 });
  producer = await startProducer(database.url, onePool, fixture.registry);
  await setPercent(fixture.pool, 100);
});
afterEach(async () => {
  await producer.close();
  await onePool.end();
});

describe('prepared statements', () => {
  it('stay bounded on a connection however many batch sizes enqueueMany sends', async () => {
    const sizes = Array.from({ length: MAX_PREPARED_TEXTS + 20 }, (_, i) => i + 1);
    for (const size of sizes) {
      await producer.manager.enqueueMany('test.noop', Array.from({ length: size }, () => ({ payload: {} })));
    }
    expect(await countWhere(fixture.pool, `engine = 'PGBOSS'`)).toBe(sizes.reduce((a, b) => a + b, 0));
    const { rows } = await onePool.query<{ n: string }>(`SELECT count(*) AS n FROM pg_prepared_statements`);
    expect(Number(rows[0]!.n)).toBeLessThanOrEqual(MAX_PREPARED_TEXTS);
  });
});
