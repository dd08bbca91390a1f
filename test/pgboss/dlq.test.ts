import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import type { JobRegistry } from '../../src/jobs/registry.js';
import { startBoss } from '../../src/pgboss/boss.js';
import { listDeadLetters, retryDeadLetters } from '../../src/pgboss/dlq.js';
import { GENERIC_TABLE } from '../../src/table/table.js';
import { runCliInProcess } from '../helpers/cli.js';
import { quietLog, type Producer, withBossWorker } from '../helpers/engines.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { fixtureRegistry, jobRows } from '../helpers/jobs.js';
import type { TestDatabase } from '../helpers/database.js';
import { pollUntil } from '../helpers/wait.js';
import { pastRetention } from '../factories/pgboss.js';

// DESIGN §12 "Delete last": `dlq retry` deletes a dead-letter copy only once its job is
// verifiably back in its queue, whatever pg-boss has already removed.

const fixture = useEngineFixture({ percent: 100 });
let database: TestDatabase;
let pool: Pool;
let registry: JobRegistry;
let producer: Producer;
beforeEach(() => ({ database, pool, registry, producer } = fixture));

const TYPE = 'test.fail-until-released';
const DLQ = `${TYPE}.dlq`;

const withWorker = <T>(run: () => Promise<T>) => withBossWorker({ url: database.url, pool, registry }, run, [TYPE]);

/** A job that fails for good on pg-boss: its row FAILED, the failed job and its dead-letter copy in pgboss.job. */
async function deadLetteredJob(payload: Record<string, unknown>): Promise<string> {
  const { id } = await producer.manager.enqueue(TYPE, payload);
  await withWorker(() => pollUntil('the final failure', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'FAILED'));
  await pollUntil('the dead-letter copy', async () => (await deadLetterCopies(id)).length === 1);
  return id;
}

interface BossJobRow {
  name: string;
  id: string;
  state: string;
  data: unknown;
  retry_count: number;
}

async function bossJobs(id: string): Promise<BossJobRow[]> {
  const { rows } = await pool.query<BossJobRow>(`SELECT name, id, state::text AS state, data, retry_count FROM pgboss.job WHERE name = $1 AND id = $2`, [TYPE, id]);
  return rows;
}

async function deadLetterCopies(id: string): Promise<BossJobRow[]> {
  const { rows } = await pool.query<BossJobRow>(`SELECT name, id, state::text AS state, data, retry_count FROM pgboss.job WHERE name = $1 AND source_id = $2`, [DLQ, id]);
  return rows;
}

const release = () => pool.query(`INSERT INTO "DemoDelivery" ("jobId", engine) VALUES ('release', 'test')`);
const cli = (...args: string[]) => runCliInProcess(['dlq', ...args, '--json', '--registry', fixtureRegistry, '--database-url', database.url]);

describe('dlq retry', () => {
  it('gives a job that failed longer ago than its retention a new retention, so pg-boss does not delete it unrun', async () => {
    const id = await deadLetteredJob({ attempt: 'old' });
    await pastRetention({ pool }, { queue: TYPE, id });
    const retried = await retryDeadLetters(pool, producer.boss, GENERIC_TABLE, await listDeadLetters(pool, [TYPE]), 'test');
    expect(retried.retried.map((letter) => letter.how)).toEqual(['retried']);
    const { rows } = await pool.query<{ due: boolean; state: string }>(`SELECT keep_until > now() + interval '1 day' AS due, state::text AS state FROM pgboss.job WHERE name = $1 AND id = $2`, [TYPE, id]);
    expect(rows).toEqual([{ due: true, state: 'retry' }]);
    expect(await deadLetterCopies(id)).toEqual([]);
  });

  it('re-creates a job pg-boss has already deleted, under its id and with its data, before deleting the dead-letter copy', async () => {
    const payload = { order: 'A-17', lines: [1, 2] };
    const id = await deadLetteredJob(payload);
    // pg-boss's retention removes failed jobs long before their dead-letter copies.
    await producer.boss.deleteJob(TYPE, id);
    expect(await bossJobs(id)).toEqual([]);

    await release();
    const retry = await cli('retry', '--type', TYPE);
    expect(retry.code, retry.stderr).toBe(0);
    // Back in its queue under the same id, with its data and its attempts so far (2 runs).
    expect(await bossJobs(id)).toEqual([{ name: TYPE, id, state: 'created', data: payload, retry_count: 2 }]);
    expect(await deadLetterCopies(id)).toEqual([]);
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ status: 'PENDING', engine: 'PGBOSS' });
    expect(JSON.parse(retry.stdout)).toEqual({ retried: 1, jobs: [id], notRetried: [] });

    // A worker runs it as the third attempt; the row follows.
    await withWorker(() => pollUntil('completion after dlq retry', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'COMPLETED'));
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ status: 'COMPLETED', attempts: 3, result: { released: true } });
    expect((await bossJobs(id))[0]?.state).toBe('completed');
    expect(await listDeadLetters(pool, [TYPE])).toEqual([]);
  });

  it('keeps the dead-letter copy, reports why and exits 1 when the job cannot be put back (its queue is gone)', async () => {
    const id = await deadLetteredJob({ order: 'B-2' });
    const [copy] = await deadLetterCopies(id);
    // An operator removed the queue: the failed job went with it, the dead letter queue stays.
    await producer.boss.deleteQueue(TYPE);
    expect(await bossJobs(id)).toEqual([]);

    const retry = await cli('retry');
    expect(retry.code, retry.stderr).toBe(1);
    const report = JSON.parse(retry.stdout) as { retried: number; jobs: string[]; notRetried: { jobId: string; dlqJobId: string; type: string; reason: string }[] };
    expect(report).toMatchObject({ retried: 0, jobs: [], notRetried: [{ jobId: id, dlqJobId: copy?.id, type: TYPE }] });
    expect(report.notRetried[0]?.reason).toMatch(/does not exist/);
    expect(retry.stderr).toMatch(/1 dead-lettered job\(s\) could not be sent back/);

    // Nothing was deleted or changed.
    expect(await deadLetterCopies(id)).toEqual([copy]);
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ status: 'FAILED', engine: 'PGBOSS' });

    // And in text, for a person.
    const text = await runCliInProcess(['dlq', 'retry', '--registry', fixtureRegistry, '--database-url', database.url]);
    expect(text.code).toBe(1);
    expect(text.stdout).toMatch(/sent 0 job\(s\) back/);
    expect(text.stdout).toContain(id);
  });

  it('counts a job someone already put back as back, and only then deletes the copy', async () => {
    const id = await deadLetteredJob({ order: 'C-3' });
    await producer.boss.retry(TYPE, id);
    expect((await bossJobs(id))[0]?.state).toBe('retry');

    const boss = await startBoss({ databaseUrl: database.url, log: quietLog });
    try {
      const letters = await listDeadLetters(pool, [TYPE]);
      const outcome = await retryDeadLetters(pool, boss, GENERIC_TABLE, letters, 'test');
      expect(outcome).toMatchObject({ retried: [{ jobId: id, how: 'already-queued' }], notRetried: [] });
    } finally {
      await boss.stop({ graceful: false, close: true });
    }
    expect(await deadLetterCopies(id)).toEqual([]);
    expect((await jobRows(pool, 'id = $1', [id]))[0]?.status).toBe('PENDING');
  });

  it('sends a failed job back with pg-boss retry, one more attempt counted on', async () => {
    const id = await deadLetteredJob({ order: 'D-4' });
    const boss = await startBoss({ databaseUrl: database.url, log: quietLog });
    try {
      const outcome = await retryDeadLetters(pool, boss, GENERIC_TABLE, await listDeadLetters(pool, [TYPE], id), 'test');
      expect(outcome).toMatchObject({ retried: [{ jobId: id, how: 'retried' }], notRetried: [] });
    } finally {
      await boss.stop({ graceful: false, close: true });
    }
    expect(await bossJobs(id)).toMatchObject([{ state: 'retry' }]);
    expect(await deadLetterCopies(id)).toEqual([]);
    await release();
    await withWorker(() => pollUntil('completion after dlq retry', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'COMPLETED'));
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ attempts: 3 });
  });
});
