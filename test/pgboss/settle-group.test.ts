// Successes ready together commit in one transaction, still atomic per job in
// meaning: a member whose claim was lost has nothing written, on either side.
import { beforeEach, describe, expect, it } from 'vitest';
import type { JobWithMetadata } from 'pg-boss';
import type { Pool } from '../../src/db/pool.js';
import type { JobRegistry } from '../../src/jobs/registry.js';
import { fetchStarted } from '../../src/pgboss/fetch.js';
import { completeGroup, type SettleContext } from '../../src/pgboss/settle.js';
import { GENERIC_TABLE } from '../../src/table/table.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { quietLog, type Producer } from '../helpers/engines.js';
import { jobRows } from '../helpers/jobs.js';
import { reclaimJob } from '../factories/pgboss.js';

const fixture = useEngineFixture({ percent: 100 });
let pool: Pool;
let registry: JobRegistry;
let producer: Producer;
beforeEach(() => ({ pool, registry, producer } = fixture));

/** Three jobs fetched as a worker does: claimed and their rows started in one statement. */
async function fetchThree(type: string): Promise<JobWithMetadata<unknown>[]> {
  await producer.manager.enqueueMany(type, [{ payload: {} }, { payload: {} }, { payload: {} }]);
  const fetched = await fetchStarted(producer.boss, pool, GENERIC_TABLE, { name: type, limit: 3, workerId: 'test-worker' });
  expect(fetched.killed).toBe(false);
  expect(fetched.jobs.filter((started) => started.rowId !== undefined)).toHaveLength(3);
  return fetched.jobs.map((started) => started.job);
}

const state = async (type: string, id: string) =>
  (await pool.query<{ state: string; retry_count: number; output: unknown }>(`SELECT state, retry_count, output FROM pgboss.job WHERE name = $1 AND id = $2`, [type, id])).rows[0];

describe('group commit of successes', () => {
  it('completes the members it still holds, in one go, and writes nothing for one whose claim was lost', async () => {
    const context: SettleContext = { boss: producer.boss, pool, table: GENERIC_TABLE, log: quietLog };
    const [a, lost, c] = await fetchThree('test.noop');
    // Another worker claimed `lost` again after it expired: its attempt number moved on.
    await reclaimJob({ pool }, { queue: 'test.noop', id: lost!.id });

    const definition = registry.require('test.noop');
    const outcome = await completeGroup(
      context,
      [a!, lost!, c!].map((job, index) => ({ definition, job, result: { n: index }, columns: { result: { n: index } } })),
    );
    expect(outcome).toEqual(['completed', 'lost', 'completed']);
    expect((await jobRows(pool, 'id = $1', [a!.id]))[0]).toMatchObject({ status: 'COMPLETED', result: { n: 0 } });
    expect((await jobRows(pool, 'id = $1', [c!.id]))[0]).toMatchObject({ status: 'COMPLETED', result: { n: 2 } });
    expect(await state('test.noop', a!.id)).toMatchObject({ state: 'completed', output: { n: 0 } });
    expect(await state('test.noop', c!.id)).toMatchObject({ state: 'completed', output: { n: 2 } });
    // The lost member: still its new attempt's, the row untouched since it started.
    expect(await state('test.noop', lost!.id)).toMatchObject({ state: 'active', retry_count: 1, output: null });
    expect((await jobRows(pool, 'id = $1', [lost!.id]))[0]).toMatchObject({ status: 'RUNNING', result: null });
  });

  it('falls back to settling each member alone when Postgres refuses one result: the others keep theirs', async () => {
    const context: SettleContext = { boss: producer.boss, pool, table: GENERIC_TABLE, log: quietLog };
    const jobs = await fetchThree('test.noop');
    const definition = registry.require('test.noop');
    const results = [{ n: 0 }, { text: 'a\u0000b' }, { n: 2 }];
    const outcome = await completeGroup(
      context,
      jobs.map((job, index) => ({ definition, job, result: results[index], columns: { result: results[index] } })),
    );
    expect(outcome).toEqual(['completed', 'completed', 'completed']);
    const rows = await jobRows(pool, 'id = ANY($1::uuid[])', [jobs.map((job) => job.id)]);
    expect(rows.map((row) => row.status)).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
    const refused = rows.find((row) => row.id === jobs[1]!.id)!;
    expect(refused).toMatchObject({ result: null, error: expect.stringMatching(/^succeeded, but its result could not be stored/) });
    expect(rows.find((row) => row.id === jobs[2]!.id)).toMatchObject({ result: { n: 2 }, error: null });
  });
});

describe('a group holding two attempts of one job', () => {
  // A worker whose attempt expired and that fetched the same job again can have both runs
  // finish together: only the attempt pg-boss holds may complete, and only its result is kept.
  it('completes the attempt pg-boss holds, with its result, and reports the stale one lost', async () => {
    const context: SettleContext = { boss: producer.boss, pool, table: GENERIC_TABLE, log: quietLog };
    const [stale] = await fetchThree('test.noop');
    await reclaimJob({ pool }, { queue: 'test.noop', id: stale!.id });
    const current = { ...stale!, retryCount: stale!.retryCount + 1 };
    const definition = registry.require('test.noop');
    const outcome = await completeGroup(context, [
      { definition, job: current, result: { attempt: 'current' }, columns: { result: { attempt: 'current' } } },
      { definition, job: stale!, result: { attempt: 'stale' }, columns: { result: { attempt: 'stale' } } },
    ]);
    expect(outcome).toEqual(['completed', 'lost']);
    expect(await state('test.noop', stale!.id)).toMatchObject({ state: 'completed', output: { attempt: 'current' } });
    expect((await jobRows(pool, '"pgbossJobId" = $1', [stale!.id]))[0]).toMatchObject({ status: 'COMPLETED', result: { attempt: 'current' } });
  });
});
