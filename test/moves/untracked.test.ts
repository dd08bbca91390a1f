// The way back after `finalize --tracking off` (DESIGN §12 "a way back at every step"): jobs
// sent since have no row in the legacy table. rollback and the workers' hand-back give each a
// legacy home through the adapter's toRow, or, where the table refuses one, leave it unrun and
// say so; no job runs on pg-boss while its type's kill switch is on.
import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { startBoss } from '../../src/pgboss/boss.js';
import { BossWorker } from '../../src/pgboss/worker.js';
import type { TestDatabase } from '../helpers/database.js';
import { quietLog, type Producer } from '../helpers/engines.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { countWhere, fixtureRegistry, jobRows, testPool } from '../helpers/jobs.js';
import { runCliInProcess } from '../helpers/cli.js';
import { pollUntil } from '../helpers/wait.js';

const fixture = useEngineFixture({});
let database: TestDatabase;
let pool: Pool;
let producer: Producer;
beforeEach(() => ({ database, pool, producer } = fixture));

const cli = (...args: string[]) => runCliInProcess([...args, '--registry', fixtureRegistry, '--database-url', database.url, '--yes']);
const bossJobs = async (state: string) => Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM pgboss.job WHERE name = 'test.record' AND state::text = $1`, [state])).rows[0]!.n);
const runs = async () => (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM "DemoDelivery"`)).rows[0]!.n;

/** test.record finalized without tracking rows, and `count` jobs sent since: in pg-boss only. */
async function finalizedUntracked(count: number): Promise<void> {
  for (const step of [['rollout', 'set', '100', '--type', 'test.record'], ['finalize', '--type', 'test.record', '--tracking', 'off']]) {
    const result = await cli(...step);
    expect(result.code, result.stderr).toBe(0);
  }
  await pollUntil('the producer to see the finalization', async () => (await producer.flags.get('test.record')).typeFlag?.finalized?.tracking === false);
  await producer.manager.enqueueMany('test.record', Array.from({ length: count }, (_, i) => ({ payload: { tag: `t${i}` } })));
  expect(await countWhere(pool, 'TRUE')).toBe(0);
  expect(await bossJobs('created')).toBe(count);
}

describe('rollback after finalize --tracking off', () => {
  it('gives every unstarted job a legacy row through toRow and takes it out of pg-boss', async () => {
    await finalizedUntracked(30);
    const result = await cli('rollback', '--type', 'test.record', '--json');
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ moved: 30, untracked: 30, homeless: [] });
    expect(await bossJobs('created')).toBe(0);
    const rows = await jobRows(pool, 'TRUE');
    expect(rows).toHaveLength(30);
    expect(rows.every((row) => row.engine === 'LEGACY' && row.status === 'PENDING' && row.attempts === 0)).toBe(true);
    const { rows: tags } = await pool.query<{ tag: string }>(`SELECT DISTINCT payload->>'tag' AS tag FROM "Job"`);
    expect(tags).toHaveLength(30);
  });

  it('where the table refuses a row, moves nothing, exits non-zero naming the reason, and no worker runs the jobs', async () => {
    await finalizedUntracked(3);
    // A column the adapter does not fill and that takes no NULL: the table cannot hold these jobs.
    await pool.query(`ALTER TABLE "Job" ADD COLUMN "teamOwner" text NOT NULL DEFAULT 'x'`);
    await pool.query(`ALTER TABLE "Job" ALTER COLUMN "teamOwner" DROP DEFAULT`);
    const result = await cli('rollback', '--type', 'test.record');
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/could not be moved back \(test\.record\)/);
    expect(result.stdout).toMatch(/NOT MOVED: 3\+ job\(s\) of test\.record .*teamOwner/);
    expect(await bossJobs('created')).toBe(3);

    // The kill switch is on: a pg-boss worker fetches them and runs none.
    const workerPool = testPool(database.url);
    const boss = await startBoss({ databaseUrl: database.url, log: quietLog, role: 'worker' });
    const worker = new BossWorker({ boss, pool: workerPool, registry: fixture.registry, log: quietLog, types: ['test.record'], pollingIntervalSeconds: 0.5 });
    try {
      await worker.start();
      await pollUntil('the worker to fetch and put back all three', async () => (await bossJobs('retry')) === 3);
    } finally {
      await worker.stop(5000);
      await workerPool.end();
    }
    expect(await runs()).toBe(0);
    expect(await countWhere(pool, 'TRUE')).toBe(0);
  });
});

describe('a pg-boss worker under the kill switch after finalize --tracking off', () => {
  it('hands every fetched job back to legacy with a row of its own, and runs none', async () => {
    await finalizedUntracked(12);
    expect((await cli('rollout', 'kill', '--type', 'test.record')).code).toBe(0);
    const workerPool = testPool(database.url);
    const boss = await startBoss({ databaseUrl: database.url, log: quietLog, role: 'worker' });
    const worker = new BossWorker({ boss, pool: workerPool, registry: fixture.registry, log: quietLog, types: ['test.record'], pollingIntervalSeconds: 0.5 });
    let stats;
    try {
      await worker.start();
      await pollUntil('every job to be handed back', async () => (await countWhere(pool, `engine = 'LEGACY' AND status = 'PENDING'`)) === 12);
    } finally {
      stats = await worker.stop(5000);
      await workerPool.end();
    }
    expect(stats).toMatchObject({ handedBack: 12, completed: 0 });
    expect(await runs()).toBe(0);
    expect(Number((await pool.query(`SELECT count(*) AS n FROM pgboss.job WHERE name = 'test.record'`)).rows[0].n)).toBe(0);
  });
});
