import type { JobWithMetadata } from 'pg-boss';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import type { JobRegistry } from '../../src/jobs/registry.js';
import { startBoss } from '../../src/pgboss/boss.js';
import { fetchStarted } from '../../src/pgboss/fetch.js';
import { completeGroup, type SettleContext } from '../../src/pgboss/settle.js';
import { BossWorker } from '../../src/pgboss/worker.js';
import { GENERIC_TABLE } from '../../src/table/table.js';
import type { TestDatabase } from '../helpers/database.js';
import { bossState, quietLog, type Producer } from '../helpers/engines.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { recordStatusHistory, statusHistory } from '../helpers/history.js';
import { jobRows, suiteRegistry } from '../helpers/jobs.js';
import { pollUntil } from '../helpers/wait.js';
import { reclaimJob } from '../factories/pgboss.js';

// DESIGN §12 "a worker that lost its claim writes nothing", in process: a handler held by the
// test outlives its claim, another worker takes the job over, and the late settle is refused.

const fixture = useEngineFixture({ percent: 100, registry: suiteRegistry });
let database: TestDatabase;
let pool: Pool;
let registry: JobRegistry;
let producer: Producer;
beforeEach(() => ({ database, pool, registry, producer } = fixture));

const runs = async (id: string) => (await pool.query<{ engine: string }>(`SELECT engine FROM "DemoDelivery" WHERE "jobId" = $1 ORDER BY at`, [id])).rows.map((r) => r.engine);
const release = (id: string) => pool.query(`INSERT INTO "DemoDelivery" ("jobId", engine) VALUES ($1, 'test')`, [`release:${id}`]);

describe('a pg-boss worker that lost its claim', () => {
  it('writes nothing, neither to pg-boss nor to the row, when it settles after another worker took the job', async () => {
    await recordStatusHistory(pool);
    const { id } = await producer.manager.enqueue('suite.held', {});
    const boss = await startBoss({ databaseUrl: database.url, log: quietLog, role: 'worker' });
    const late = new BossWorker({ boss, pool, registry, log: quietLog, pollingIntervalSeconds: 0.5, types: ['suite.held'] });
    await late.start();
    let stopped: Promise<Awaited<ReturnType<BossWorker['stop']>>> | undefined;
    try {
      await pollUntil('attempt 1 to run', async () => (await runs(id)).includes('PGBOSS:1'));
      // Attempt 1 expires and another worker claims attempt 2: what expiry then fetch leave in
      // pg-boss (active again, one more run counted), written directly so that no worker of
      // this test, the late one included, can take the job in between.
      await reclaimJob({ pool }, { queue: 'suite.held', id });
      // The late worker's handler finishes now; a graceful stop waits for it to settle.
      await release(id);
      stopped = late.stop(10_000);
    } finally {
      stopped ??= late.stop(0);
    }
    const stats = await stopped;
    expect(stats).toMatchObject({ completed: 0, claimsLost: 1 });
    // pg-boss still holds attempt 2 for its new owner, and the row says what attempt 1's start wrote.
    expect(await bossState(pool, 'suite.held', id)).toEqual({ state: 'active', retry_count: 1 });
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ status: 'RUNNING', attempts: 1, result: null });
    expect((await statusHistory(pool, id)).map((change) => change.status)).toEqual(['PENDING', 'RUNNING']);
  });
});

describe('a lost claim in a group that falls back to settling alone', () => {
  it('writes nothing for the member whose claim was lost, when another member\'s result is refused', async () => {
    await producer.manager.enqueueMany('suite.noop', [{ payload: {} }, { payload: {} }]);
    // Claimed and started as a worker's fetch does it, in one statement.
    const fetched = await fetchStarted(producer.boss, pool, GENERIC_TABLE, { name: 'suite.noop', limit: 2, workerId: 'test-worker' });
    expect(fetched.jobs.filter((started) => started.rowId !== undefined)).toHaveLength(2);
    const [refused, lost] = fetched.jobs.map((started) => started.job) as [JobWithMetadata<unknown>, JobWithMetadata<unknown>];
    // `lost` expired and another worker claimed it again; `refused` has a result Postgres refuses
    // (a NUL), so the group cannot commit as one and each member is settled alone.
    await reclaimJob({ pool }, { queue: 'suite.noop', id: lost.id });
    const definition = registry.require('suite.noop');
    const context: SettleContext = { boss: producer.boss, pool, table: GENERIC_TABLE, log: quietLog };
    const outcome = await completeGroup(context, [
      { definition, job: refused, result: { text: 'a\u0000b' }, columns: { result: { text: 'a\u0000b' } } },
      { definition, job: lost, result: { n: 1 }, columns: { result: { n: 1 } } },
    ]);
    expect(outcome).toEqual(['completed', 'lost']);
    expect((await jobRows(pool, 'id = $1', [refused.id]))[0]).toMatchObject({ status: 'COMPLETED', result: null });
    expect((await jobRows(pool, 'id = $1', [lost.id]))[0]).toMatchObject({ status: 'RUNNING', result: null, error: null });
    expect(await bossState(pool, 'suite.noop', lost.id)).toEqual({ state: 'active', retry_count: 1 });
  });
});
