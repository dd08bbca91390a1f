// `reconcile --fix` writes an adopted table's columns the way the table means them, as the
// engines do: a priority in the table's order (delayed_job runs lower numbers first), attempts
// as the table counts them (failed runs, or retries), a limit of retries, a "completed at" that
// means "succeeded" left empty by a failure (whose time goes to failed_at), and a success on a
// table it leaves (onSuccess: 'archive') moved to the archive. Both for a pg-boss job with no row
// (orphan, adopted) and for a row behind its pg-boss job's final state (drift, copied).
import { describe, expect, it } from 'vitest';
import { pgbossPriority } from '../../src/table/priority.js';
import { moveJobTo, onLastAttempt, pgbossJob } from '../factories/pgboss.js';
import { setPercent } from '../helpers/engines.js';
import { useExample, type Example } from '../helpers/example.js';

type Row = Record<string, unknown>;

async function fix(example: Example): Promise<{ lost: number; orphan: number; drift: number }> {
  const run = await example.cli('reconcile', '--fix', '--grace', '0', '--json');
  expect(run.code, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as { fixed: { lost: number; orphan: number; drift: number } }).fixed;
}

async function rowOf(example: Example, from: string, pgbossJobId: string): Promise<Row | undefined> {
  return (await example.pool.query<Row>(`SELECT * FROM ${from} WHERE "pgbossJobId" = $1`, [pgbossJobId])).rows[0];
}

/** A new job on pg-boss with its tracking row, as an application enqueues it at 100 %: its pg-boss id. */
async function enqueued(example: Example, type: string, payload: object, options: { priority?: number } = {}): Promise<string> {
  await setPercent(example.pool, 100);
  example.producer.flags.invalidate();
  const sent = await example.producer.manager.enqueue(type, payload, options);
  expect(sent.engine).toBe('PGBOSS');
  return sent.pgbossJobId!;
}

describe('a delayed_job table: lower priority first, attempts count failed runs, failed_at for good, a success leaves the table', () => {
  const example = useExample('delayed-jobs');
  const db = () => ({ boss: example.producer.boss, pool: example.pool });
  const ARCHIVE = '"public"."delayed_jobs_cutover_archive"';
  const mail = (to: string, rank: number) => ({ to, rank });

  it('adopts a failed orphan with its priority in the table order, failed runs counted, failed_at set and completedAt empty', async () => {
    // Priority 3 of a lower-first table is -3 in cutover's (and pg-boss's) order.
    const job = await pgbossJob(db(), { queue: 'mailers', data: mail('orphan-failed@example.com', 3), priority: pgbossPriority(-3), state: 'failed', retryCount: 1 });
    expect(await fix(example)).toMatchObject({ orphan: 1 });
    const row = await rowOf(example, 'delayed_jobs', job.id);
    expect(row).toMatchObject({ cutoverStatus: 'FAILED', routeReason: 'adopted', priority: 3, attempts: 2, completedAt: null, last_error: 'factory: failed' });
    expect(row?.failed_at).toBeInstanceOf(Date);
  });

  it('adopts a completed orphan into the archive, with the failed runs before its success', async () => {
    const job = await pgbossJob(db(), { queue: 'mailers', data: mail('orphan-done@example.com', 2), priority: pgbossPriority(-2), state: 'completed', retryCount: 1 });
    expect(await fix(example)).toMatchObject({ orphan: 1 });
    expect(await rowOf(example, 'delayed_jobs', job.id)).toBeUndefined();
    const archived = await rowOf(example, ARCHIVE, job.id);
    expect(archived).toMatchObject({ cutoverStatus: 'COMPLETED', priority: 2, attempts: 1, failed_at: null });
    expect(archived?.completedAt).toBeInstanceOf(Date);
  });

  it('copies a failure for good to a drifted row: failed_at set, completedAt empty', async () => {
    const id = await enqueued(example, 'mailers', mail('drift-failed@example.com', 0));
    const ref = { queue: 'mailers', id };
    await onLastAttempt(db(), ref);
    await moveJobTo(db(), ref, 'failed');
    expect(await fix(example)).toMatchObject({ drift: 1 });
    const row = await rowOf(example, 'delayed_jobs', id);
    expect(row).toMatchObject({ cutoverStatus: 'FAILED', attempts: 1, completedAt: null, last_error: 'factory: failed' });
    expect(row?.failed_at).toBeInstanceOf(Date);
  });

  it('copies a success to a drifted row as the engines end it: in the archive, no failed run counted', async () => {
    const id = await enqueued(example, 'mailers', mail('drift-done@example.com', 0));
    await moveJobTo(db(), { queue: 'mailers', id }, 'completed');
    expect(await fix(example)).toMatchObject({ drift: 1 });
    expect(await rowOf(example, 'delayed_jobs', id)).toBeUndefined();
    const archived = await rowOf(example, ARCHIVE, id);
    expect(archived).toMatchObject({ cutoverStatus: 'COMPLETED', attempts: 0, failed_at: null });
    expect(archived?.completedAt).toBeInstanceOf(Date);
  });

  it('re-sends a lost job at the priority its row holds, turned into pg-boss order', async () => {
    // Cutover's -4: the table's 4, behind its 0..3.
    const id = await enqueued(example, 'mailers', mail('lost@example.com', 4), { priority: -4 });
    expect(await rowOf(example, 'delayed_jobs', id)).toMatchObject({ priority: 4 });
    await example.producer.boss.deleteJob('mailers', id);
    expect(await fix(example)).toMatchObject({ lost: 1 });
    const { rows } = await example.pool.query<{ priority: number }>(`SELECT priority FROM pgboss.job WHERE name = 'mailers' AND id = $1`, [id]);
    expect(rows).toEqual([{ priority: pgbossPriority(-4) }]);
  });
});

describe('a workflow table: attempts count retries, maxRetries limits retries, finishedAt means finished', () => {
  const example = useExample('workflow-runs');
  const db = () => ({ boss: example.producer.boss, pool: example.pool });

  it('adopts a failed orphan with its retries, its limit of retries and its finish time', async () => {
    const job = await pgbossJob(db(), { queue: 'order.fulfil', data: { orderId: 1 }, priority: pgbossPriority(5), state: 'failed', retryCount: 2 });
    expect(await fix(example)).toMatchObject({ orphan: 1 });
    const row = await rowOf(example, '"WorkflowRun"', job.id);
    expect(row).toMatchObject({ id: job.id, state: 'FAILED', priority: 5, retried: 2, maxRetries: 2, error: 'factory: failed' });
    expect(row?.finishedAt).toBeInstanceOf(Date);
  });

  it('copies a success to a drifted row with no retry counted', async () => {
    const id = await enqueued(example, 'order.fulfil', { orderId: 2 });
    await moveJobTo(db(), { queue: 'order.fulfil', id }, 'completed');
    expect(await fix(example)).toMatchObject({ drift: 1 });
    const row = await rowOf(example, '"WorkflowRun"', id);
    expect(row).toMatchObject({ state: 'SUCCEEDED', retried: 0 });
    expect(row?.finishedAt).toBeInstanceOf(Date);
  });

  it('copies a success to a drifted row keeping the last failed run’s error, as the team’s runner does (errorOnSuccess: keep)', async () => {
    const id = await enqueued(example, 'order.fulfil', { orderId: 3 });
    await example.pool.query(`UPDATE "WorkflowRun" SET error = 'warehouse unavailable' WHERE id = $1`, [id]);
    await moveJobTo(db(), { queue: 'order.fulfil', id }, 'completed');
    expect(await fix(example)).toMatchObject({ drift: 1 });
    expect(await rowOf(example, '"WorkflowRun"', id)).toMatchObject({ state: 'SUCCEEDED', error: 'warehouse unavailable' });
  });
});
