// A job table of another shape adopts end to end (examples/jobs-table): snake_case,
// bigserial ids, text statuses, a queue column and a JSON payload, a scheduled time (run_at),
// retries on the same row, and a child table pointing at the job row. Then the team's own
// runner, unpatched and patched, beside cutover's pg-boss worker.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { pgbossIdFor } from '../../src/table/ids.js';
import { setPercent } from '../helpers/engines.js';
import { stopWorkers as stop, useExample } from '../helpers/example.js';
import { pollUntil } from '../helpers/wait.js';

const example = useExample('jobs-table', async (pool) => {
  // The team's producers wrote these before cutover: due now, scheduled for tomorrow, and some history.
  await pool.query(`INSERT INTO jobs (queue, payload) SELECT 'email.send', jsonb_build_object('to', 'u' || n || '@example.com', 'subject', 'hi') FROM generate_series(1, 20) n`);
  await pool.query(`INSERT INTO jobs (queue, payload, run_at) SELECT 'report.build', jsonb_build_object('reportId', n), now() + interval '1 day' FROM generate_series(1, 5) n`);
  await pool.query(`INSERT INTO jobs (queue, payload, status, attempts, finished_at) VALUES ('email.send', '{"to":"old@example.com","subject":"x"}', 'done', 1, now())`);
});
const cli = (...args: string[]) => example.cli(...args);
const worker = (engine: 'legacy' | 'pgboss', ...args: string[]) => example.worker(engine, ...args);
const count = async (where: string, values: unknown[] = []) => Number((await example.pool.query<{ n: string }>(`SELECT count(*) AS n FROM jobs WHERE ${where}`, values)).rows[0]!.n);

/** Runs per job: every job that ran, how often, on which engine. */
async function runsPerJob(): Promise<Map<string, string[]>> {
  const { rows } = await example.pool.query<{ job_id: string; engines: string[] }>(`SELECT job_id::text, array_agg(engine ORDER BY at) AS engines FROM job_runs GROUP BY 1`);
  return new Map(rows.map((row) => [row.job_id, row.engines]));
}

describe('adopting a snake_case table with text statuses, bigint ids, run_at and same-row retries', () => {
  it('routes at 50 %, moves the backlog with its schedule, runs both engines once each, reconciles clean and rolls back', async () => {
    const { pool, producer, project } = example;
    const migration = (await readdir(join(project, 'migrations')))[0]!;
    const sql = await readFile(join(project, 'migrations', migration, 'migration.sql'), 'utf8');
    expect(sql).toContain('CREATE TRIGGER');
    expect(sql).not.toContain('originalJobId');

    expect((await cli('rollout', 'set', '50', '--yes')).code).toBe(0);
    const sent = await producer.manager.enqueueMany('email.send', Array.from({ length: 40 }, (_, i) => ({ payload: { to: `n${i}@example.com`, subject: 'new' } })));
    // Ids come from the table's sequence; pg-boss ids are their uuidv5.
    for (const job of sent) expect(job.id).toMatch(/^\d+$/);
    const toBoss = sent.filter((job) => job.engine === 'PGBOSS');
    expect(toBoss.length).toBeGreaterThan(5);
    for (const job of toBoss) expect(job.pgbossJobId).toBe(pgbossIdFor(job.id));
    const flaky = await producer.manager.enqueue('report.build', { reportId: 99, failFirst: true }, { key: 'legacy-side' });

    // The backlog moves, scheduled rows keep their time in pg-boss.
    const moved = await cli('migrate', '--json');
    expect(moved.code, moved.stderr).toBe(0);
    const { rows: scheduled } = await pool.query<{ run_at: Date; start_after: Date }>(
      `SELECT j.run_at, b.start_after FROM jobs j JOIN pgboss.job b ON b.name = j.queue AND b.id = j."pgbossJobId" WHERE j.queue = 'report.build' AND j.run_at > now()`,
    );
    expect(scheduled).toHaveLength(5);
    for (const row of scheduled) expect(row.start_after).toEqual(row.run_at);
    expect(await count(`status = 'queued' AND engine = 'LEGACY'`)).toBe(0);

    // New legacy work, a job whose first attempt fails, and both engines at once.
    await setPercent(pool, 0);
    producer.flags.invalidate();
    const legacyOnes = await producer.manager.enqueueMany('report.build', [{ payload: { reportId: 1, failFirst: true } }, { payload: { reportId: 2 } }]);
    expect(legacyOnes.every((job) => job.engine === 'LEGACY')).toBe(true);
    const workers = [worker('legacy'), worker('pgboss')];
    await pollUntil('every due job done', async () => (await count(`status IN ('queued', 'working') AND run_at <= now()`)) === 0, { timeoutMs: 90_000, intervalMs: 250 });
    await stop(workers);

    // Every due job ran exactly once, apart from the failing first attempts, retried on the same row.
    const runs = await runsPerJob();
    expect(await count(`status = 'done'`)).toBe(20 + 40 + 1 + 2 + 1);
    const retried = new Set([flaky.id, legacyOnes[0]!.id]);
    expect(runs.size).toBe(20 + 40 + 1 + 2);
    for (const [id, engines] of runs) expect(engines, `job ${id}`).toHaveLength(retried.has(id) ? 2 : 1);
    const { rows: retriedRow } = await pool.query(`SELECT status, attempts, last_error FROM jobs WHERE id = $1`, [legacyOnes[0]!.id]);
    expect(retriedRow).toEqual([{ status: 'done', attempts: 2, last_error: null }]);
    expect(await count(`engine = 'PGBOSS' AND status = 'done'`)).toBeGreaterThanOrEqual(20 + toBoss.length);

    const reconciled = await cli('reconcile', '--grace', '0', '--json');
    expect(JSON.parse(reconciled.stdout).total, reconciled.stdout).toBe(0);
    expect(reconciled.code).toBe(0);

    // Rollback: the scheduled jobs come back to the table with their run_at, for the team's runner.
    const back = await cli('rollback', '--yes', '--json');
    expect(back.code, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({ moved: 5 });
    const { rows: returned } = await pool.query<{ run_at: Date; ok: boolean }>(`SELECT run_at, run_at > now() + interval '20 hours' AS ok FROM jobs WHERE status = 'queued' AND engine = 'LEGACY'`);
    expect(returned.map((row) => row.ok)).toEqual([true, true, true, true, true]);
  }, 180_000);
});

describe("the team's own runner beside cutover", () => {
  /** The team's runner as it was written: its own connection, no cutover mark, no engine filter unless patched. */
  async function teamRunner(patched: boolean) {
    const client = new pg.Client({ connectionString: example.database.url, options: '-c TimeZone=UTC' });
    await client.connect();
    const engine = patched ? `AND engine = 'LEGACY'` : '';
    return {
      pending: async () => Number((await client.query(`SELECT count(*) AS n FROM jobs WHERE status = 'queued' ${engine}`)).rows[0].n),
      claim: async () =>
        (
          await client.query<{ id: string }>(
            `UPDATE jobs SET status = 'working', attempts = attempts + 1, locked_at = now(), updated_at = now()
              WHERE id = (SELECT id FROM jobs WHERE status = 'queued' ${engine} AND run_at <= now() ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
              RETURNING id::text`,
          )
        ).rows[0]?.id,
      finish: (id: string) => client.query(`UPDATE jobs SET status = 'done', finished_at = now(), updated_at = now() WHERE id = $1`, [id]),
      cleanup: async () =>
        (await client.query(`UPDATE jobs SET status = 'dead', last_error = 'stale', updated_at = now() WHERE status = 'working' ${engine} AND locked_at < now() - interval '1 second'`))
          .rowCount,
      close: () => client.end(),
    };
  }

  it('unpatched, its claim and its stale cleanup are refused by the guard; patched, it runs beside pg-boss with nothing lost, doubled or wrongly failed', async () => {
    const { pool, producer } = example;
    expect((await cli('rollout', 'unkill')).code).toBe(0);
    // Only this test's rows wait: whatever the test before left on legacy is done.
    await pool.query(`UPDATE jobs SET status = 'done', finished_at = now() WHERE status = 'queued' AND engine = 'LEGACY'`);
    await setPercent(pool, 100);
    producer.flags.invalidate();
    // Long pg-boss jobs (a few seconds), and legacy rows for the team's runner.
    const long = await producer.manager.enqueueMany('email.send', Array.from({ length: 4 }, (_, i) => ({ payload: { to: `long${i}@example.com`, subject: 'long', delayMs: 3000 } })));
    expect(long.every((job) => job.engine === 'PGBOSS')).toBe(true);
    const { rows: legacyRows } = await pool.query<{ id: string }>(
      `INSERT INTO jobs (queue, payload) SELECT 'email.send', jsonb_build_object('to', 'team' || n || '@example.com', 'subject', 'team') FROM generate_series(1, 6) n RETURNING id::text`,
    );
    // A pg-boss job whose worker is mid-run: its row says working since a while.
    await pool.query(`UPDATE jobs SET status = 'working', locked_at = now() - interval '1 minute' WHERE id = $1`, [long[0]!.id]);

    const unpatched = await teamRunner(false);
    try {
      // The oldest queued rows are pg-boss's; the unpatched claim takes one and is refused.
      await expect(unpatched.claim()).rejects.toThrow(/cutover guard: row \d+ of public\.jobs belongs to pg-boss .*add AND "engine" = 'LEGACY'/);
      await expect(unpatched.cleanup()).rejects.toThrow(/cutover guard/);
    } finally {
      await unpatched.close();
    }
    expect(await count(`engine = 'PGBOSS' AND status = 'dead'`)).toBe(0);
    await pool.query(`UPDATE jobs SET status = 'queued', locked_at = NULL WHERE id = $1`, [long[0]!.id]);

    // Patched: the team's runner and cutover's pg-boss worker side by side.
    const patched = await teamRunner(true);
    const pgboss = worker('pgboss');
    try {
      expect(await patched.pending()).toBe(6);
      const claimed: string[] = [];
      for (let id = await patched.claim(); id; id = await patched.claim()) {
        claimed.push(id);
        await patched.finish(id);
        await patched.cleanup();
      }
      expect(claimed.sort()).toEqual(legacyRows.map((row) => row.id).sort());
      await pollUntil('pg-boss to finish its jobs', async () => (await count(`id = ANY($1::bigint[]) AND status = 'done'`, [long.map((job) => job.id)])) === 4, { timeoutMs: 60_000 });
      expect(await patched.cleanup()).toBe(0);
      await stop([pgboss]);
    } finally {
      await patched.close();
    }
    const runs = await runsPerJob();
    for (const job of long) expect(runs.get(job.id)).toEqual(['PGBOSS']);
    expect(await count(`status = 'dead'`)).toBe(0);
  }, 120_000);
});
