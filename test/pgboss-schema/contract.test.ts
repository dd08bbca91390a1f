// Cutover writes pgboss.job itself (pgboss-schema/settle.ts, insert.ts): each such statement
// must leave a job exactly as pg-boss's own command would. For every queue policy the installed
// pg-boss supports, twin jobs go through pg-boss's command and through cutover's statement, and
// their pgboss.job rows are compared column by column.
import { policies, type JobWithMetadata, type PgBoss, type QueuePolicy } from 'pg-boss';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { startBoss } from '../../src/pgboss/boss.js';
import { completeMirrored } from '../../src/pgboss/mirror.js';
import { composeInsert } from '../../src/pgboss-schema/insert.js';
import { delayRetry, exhaustRetries } from '../../src/pgboss-schema/settle.js';
import { GENERIC_TABLE } from '../../src/table/table.js';
import { quietLog } from '../helpers/engines.js';
import { useDatabaseFixture } from '../helpers/fixture.js';

type JobRow = Record<string, unknown>;

/**
 * Columns that legitimately differ between twins:
 * - id, and a dead-letter copy's source_id / source_root_id: each twin is its own job;
 * - singleton_key: each twin gets its own key, or the policies that allow one job per key
 *   (short, singleton, stately, exclusive, key_strict_fifo) would refuse the second twin.
 * Timestamps are compared as "both set / both null": the twins are written moments apart.
 */
const DIFFERENT_BY_DESIGN = new Set(['id', 'singleton_key', 'source_id', 'source_root_id']);
const TIMESTAMPS = new Set(['start_after', 'created_on', 'started_on', 'completed_on', 'keep_until', 'singleton_on', 'heartbeat_on', 'source_created_on']);

/** The columns in which two pgboss.job rows differ, beyond what twins may. */
export function differingColumns(a: JobRow, b: JobRow): string[] {
  const columns = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return columns.filter((column) => {
    if (DIFFERENT_BY_DESIGN.has(column)) return false;
    if (TIMESTAMPS.has(column)) return (a[column] === null) !== (b[column] === null);
    return JSON.stringify(a[column]) !== JSON.stringify(b[column]);
  });
}

const fixture = useDatabaseFixture();
let pool: Pool;
let boss: PgBoss;
beforeEach(async () => {
  pool = fixture.pool;
  boss = await startBoss({ databaseUrl: fixture.database.url, log: quietLog, max: 4 });
});
afterEach(async () => {
  await boss.stop({ graceful: false });
});

const jobRow = async (name: string, id: string): Promise<JobRow> => {
  const { rows } = await pool.query<{ row: JobRow }>(`SELECT to_jsonb(j) AS row FROM pgboss.job j WHERE name = $1 AND id = $2`, [name, id]);
  expect(rows[0], `job ${id} in ${name}`).toBeDefined();
  return rows[0]!.row;
};
const deadLetterCopy = async (name: string, sourceId: string): Promise<JobRow> => {
  const { rows } = await pool.query<{ row: JobRow }>(`SELECT to_jsonb(j) AS row FROM pgboss.job j WHERE name = $1 AND source_id = $2`, [`${name}_dlq`, sourceId]);
  expect(rows, `dead-letter copy of ${sourceId}`).toHaveLength(1);
  return rows[0]!.row;
};

/** A queue of `policy` with a dead letter queue; twins sent with their own singleton keys, fetched. */
async function queueOf(policy: string): Promise<string> {
  const name = `contract_${policy}`;
  await boss.createQueue(`${name}_dlq`);
  await boss.createQueue(name, { policy: policy as QueuePolicy, retryLimit: 2, retryDelay: 0, deadLetter: `${name}_dlq` });
  return name;
}
async function fetchedTwins(name: string, options: { retryLimit?: number } = {}): Promise<[JobWithMetadata<unknown>, JobWithMetadata<unknown>]> {
  const ids = await Promise.all(['a', 'b'].map((key) => boss.send(name, { twin: true }, { singletonKey: key, priority: 3, ...options })));
  const fetched = await boss.fetch(name, { batchSize: 2, includeMetadata: true });
  const byId = new Map(fetched.map((job) => [job.id, job]));
  expect(byId.size, 'both twins fetched').toBe(2);
  return [byId.get(ids[0]!)!, byId.get(ids[1]!)!];
}
const fence = (job: JobWithMetadata<unknown>) => ({ id: job.id, retryCount: job.retryCount });

const POLICIES = Object.values(policies);

describe('the comparer', () => {
  it('reports a differing column, a timestamp set on one side only, and nothing for twins', () => {
    const a = { id: '1', singleton_key: 'a', priority: 3, state: 'completed', completed_on: '2025-01-01T00:00:00Z', output: { x: 1 } };
    expect(differingColumns(a, { ...a, id: '2', singleton_key: 'b', completed_on: '2025-01-02T00:00:00Z' })).toEqual([]);
    expect(differingColumns(a, { ...a, priority: 4 })).toEqual(['priority']);
    expect(differingColumns(a, { ...a, completed_on: null })).toEqual(['completed_on']);
    expect(differingColumns(a, { ...a, output: { x: 2 } })).toEqual(['output']);
  });

  it('knows the policies of the installed pg-boss', () => {
    expect(POLICIES).toEqual(expect.arrayContaining(['standard', 'short', 'singleton', 'stately', 'exclusive']));
  });
});

describe.each(POLICIES)('cutover writes pgboss.job as pg-boss does, policy %s', (policy) => {
  it('complete: the fenced group complete (completeMirrored) leaves the job as pg-boss complete does', async () => {
    const name = await queueOf(policy);
    const [own, ours] = await fetchedTwins(name);
    await boss.complete(name, fence(own), { answer: 42 });
    const done = await completeMirrored(pool, GENERIC_TABLE, name, [{ ...fence(ours), output: { answer: 42 }, columns: {} }]);
    expect([...done]).toEqual([ours.id]);
    expect(differingColumns(await jobRow(name, own.id), await jobRow(name, ours.id))).toEqual([]);
  });

  it('fail to exhaustion: exhaustRetries then fail leaves the job, and its dead-letter copy, as a job failing its last attempt', async () => {
    const name = await queueOf(policy);
    const [own, ours] = await fetchedTwins(name, { retryLimit: 0 });
    // cutover's twin would have retries left; exhaustRetries spends them.
    await pool.query(`UPDATE pgboss.job SET retry_limit = 2 WHERE name = $1 AND id = $2`, [name, ours.id]);
    await boss.fail(name, fence(own), { message: 'boom' });
    const { rowCount } = await pool.query(exhaustRetries, [name, ours.id, ours.retryCount]);
    expect(rowCount).toBe(1);
    await boss.fail(name, fence(ours), { message: 'boom' });
    const ownRow = await jobRow(name, own.id);
    expect(ownRow.state).toBe('failed');
    expect(differingColumns(ownRow, await jobRow(name, ours.id))).toEqual([]);
    expect(differingColumns(await deadLetterCopy(name, own.id), await deadLetterCopy(name, ours.id))).toEqual([]);
  });

  it('retry: delayRetry on a job pg-boss put in retry changes nothing but start_after', async () => {
    const name = await queueOf(policy);
    const [own, ours] = await fetchedTwins(name);
    await boss.fail(name, fence(own), { message: 'again' });
    await boss.fail(name, fence(ours), { message: 'again' });
    const { rowCount } = await pool.query(delayRetry, [name, ours.id, 0, ours.retryCount]);
    expect(rowCount).toBe(1);
    const ownRow = await jobRow(name, own.id);
    expect(ownRow.state).toBe('retry');
    expect(differingColumns(ownRow, await jobRow(name, ours.id))).toEqual([]);
  });

  it("insert: pg-boss's insert composed with cutover's CTE (composeInsert) inserts the job as the plain insert does", async () => {
    const name = await queueOf(policy);
    const job = (key: string) => ({ data: { twin: true }, priority: 3, singletonKey: key });
    const [ownId] = (await boss.insert(name, [job('a')], { returnId: true })) ?? [];
    let composed = 0;
    const db = {
      executeSql: async (text: string, values: unknown[] = []) => {
        const statement = composeInsert(text, 'SELECT 1');
        expect(statement, 'a shape composeInsert knows').not.toBeNull();
        composed += 1;
        return pool.query(statement!, values);
      },
    };
    const [oursId] = (await boss.insert(name, [job('b')], { db, returnId: true })) ?? [];
    expect(composed).toBe(1);
    expect(differingColumns(await jobRow(name, ownId!), await jobRow(name, oursId!))).toEqual([]);
  });
});
