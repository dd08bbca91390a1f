// The delayed_job table adopts end to end (examples/delayed-jobs): no status column, lower
// priority numbers first, attempts counting failed runs, failed_at set only on the failure for
// good, locked_at while a worker holds a row, and a success deleting the row (cutover keeps it
// in its archive). Then the team's own claiming runner, unpatched and patched, beside pg-boss.
import { describe, expect, it } from 'vitest';
import { runnerFilters } from '../../src/adopt/adopt.js';
import { loadConfigFile } from '../../src/config/file.js';
import { bindLegacyTable } from '../../src/table/table.js';
import { useExample } from '../helpers/example.js';
import { besideTeamRunner, runShapeFlow, teamClient } from '../helpers/shape.js';

const ARCHIVE = '"public"."delayed_jobs_cutover_archive"';
/** The team's own questions of its table. Succeeded jobs are no longer in it. */
const TEAM = {
  waiting: `failed_at IS NULL AND locked_at IS NULL`,
  due: `failed_at IS NULL AND locked_at IS NULL AND (run_at IS NULL OR run_at <= now())`,
  held: `failed_at IS NULL AND locked_at IS NOT NULL`,
  failed: `failed_at IS NOT NULL`,
};
const mail = (to: string, rank: number, failTimes?: number) => ({ to, rank, ...(failTimes === undefined ? {} : { failTimes }) });

const example = useExample('delayed-jobs', async (pool) => {
  // As Rails writes them: priorities 0..7, two for tomorrow, one failed for good, one held by a live worker.
  const insert = `INSERT INTO delayed_jobs (queue, priority, handler, run_at, attempts, failed_at, last_error, locked_at, locked_by, created_at, updated_at)`;
  await pool.query(`${insert} SELECT 'mailers', n % 8, json_build_object('to', 'u' || n || '@example.com', 'rank', n % 8)::text, now(), 0, NULL, NULL, NULL, NULL, now(), now() FROM generate_series(1, 8) n`);
  await pool.query(`${insert} SELECT 'mailers', 0, json_build_object('to', 'later' || n || '@example.com', 'rank', 0)::text, now() + interval '1 day', 0, NULL, NULL, NULL, NULL, now(), now() FROM generate_series(1, 2) n`);
  await pool.query(`${insert} VALUES ('mailers', 0, '{"to":"dead@example.com","rank":0}', now(), 3, now(), 'mailbox full', NULL, NULL, now(), now())`);
  await pool.query(`${insert} VALUES ('mailers', 0, '{"to":"held@example.com","rank":0}', now(), 0, NULL, NULL, now(), 'host:1 pid:42', now(), now())`);
});
const count = async (where: string, values: unknown[] = [], from = 'delayed_jobs') =>
  Number((await example.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${from} WHERE ${where}`, values)).rows[0]!.n);
const team = async () => ({ waiting: await count(TEAM.waiting), held: await count(TEAM.held), failed: await count(TEAM.failed) });
/** Rows whose cutover status says something else than the team's own columns (none running on cutover's side). */
const disagreeing = () =>
  count(`"cutoverStatus" <> CASE WHEN "completedAt" IS NOT NULL THEN 'COMPLETED' WHEN failed_at IS NOT NULL THEN 'FAILED' WHEN locked_at IS NOT NULL THEN 'RUNNING' ELSE 'PENDING' END`);

async function runsPerJob(): Promise<Map<string, string[]>> {
  const { rows } = await example.pool.query<{ id: string; engines: string[] }>(`SELECT job_id::text AS id, array_agg(engine ORDER BY id) AS engines FROM delayed_job_runs GROUP BY 1`);
  return new Map(rows.map((row) => [row.id, row.engines]));
}

describe('adopting the delayed_job table (no status column, lower priority first, a success deletes the row)', () => {
  it('init backfills cutover’s status: failed for good, held by the team’s worker, waiting', async () => {
    expect(await team()).toEqual({ waiting: 10, held: 1, failed: 1 });
    expect(await disagreeing()).toBe(0);
    expect(await count(`"cutoverStatus" = 'RUNNING'`)).toBe(1);
    const config = await loadConfigFile(undefined, example.project);
    const filters = runnerFilters(await bindLegacyTable(example.pool, config.legacy!));
    expect(filters[1]).toMatch(/^claim: +UPDATE "public"\."delayed_jobs" SET \.\.\. WHERE "id" IN \(SELECT "id" FROM "public"\."delayed_jobs" WHERE "failed_at" IS NULL AND "run_at" <= now\(\) AND "engine" = 'LEGACY' AND "workerId" IS NULL/);
  });

  it('moves the backlog in the table’s priority order, runs both engines, archives the successes, reconciles clean and rolls back', async () => {
    const { pool } = example;
    await runShapeFlow(example, {
      type: 'mailers',
      payload: (name, failTimes) => mail(`${name}@example.com`, 0, failTimes),
      dueBacklog: 8,
      batch: 16,
      runsPerJob,
      allDone: async () => (await count(`"cutoverStatus" IN ('PENDING', 'RUNNING') AND locked_by IS NULL AND (run_at IS NULL OR run_at <= now())`)) === 0,
      migrated: async () => {
        // pg-boss runs the table's lowest priority number first.
        const { rows: ranked } = await pool.query<{ priority: number }>(
          `SELECT j.priority FROM delayed_jobs j JOIN pgboss.job b ON b.name = j.queue AND b.id = j."pgbossJobId" WHERE j."routeReason" = 'migrated' ORDER BY b.priority DESC, j.id`,
        );
        const order = ranked.map((row) => row.priority);
        expect(order).toEqual([...order].sort((a, b) => a - b));
        expect(new Set(order)).toEqual(new Set([0, 1, 2, 3, 4, 5, 6, 7]));
        // The team's held row stays with the team; the scheduled ones keep their time in pg-boss.
        expect(await count(`engine = 'LEGACY' AND locked_by IS NOT NULL`)).toBe(1);
        const { rows: scheduled } = await pool.query<{ at: Date; start_after: Date }>(
          `SELECT j.run_at AS at, b.start_after FROM delayed_jobs j JOIN pgboss.job b ON b.name = j.queue AND b.id = j."pgbossJobId" WHERE j.run_at > now()`,
        );
        expect(scheduled).toHaveLength(2);
        for (const row of scheduled) expect(row.start_after.getTime()).toBe(row.at.getTime());
        // What a trigger (or change-data capture) on the team's table sees of each update from now on.
        await pool.query(`CREATE TABLE delayed_job_seen (job_id bigint, status text, failed boolean);
          CREATE FUNCTION delayed_job_seen() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
            INSERT INTO delayed_job_seen VALUES (NEW.id, NEW."cutoverStatus", NEW.failed_at IS NOT NULL); RETURN NEW; END $$;
          CREATE TRIGGER delayed_job_seen AFTER UPDATE ON delayed_jobs FOR EACH ROW EXECUTE FUNCTION delayed_job_seen();`);
      },
      ran: async ({ onceBoss, onceLegacy, deadBoss, deadLegacy }) => {
        const runs = await runsPerJob();
        // Successes have left the table as the team's worker would have deleted them; cutover's archive keeps them.
        expect(await count(`id = ANY($1::bigint[])`, [[...runs.keys()].filter((id) => id !== deadBoss.id && id !== deadLegacy.id)])).toBe(0);
        expect(await count(`"cutoverStatus" = 'COMPLETED'`, [], ARCHIVE)).toBe(8 + 16 + 2);
        // The flaky ones' failed run counted, its error kept through the success as delayed_job's worker leaves it.
        for (const job of [onceBoss, onceLegacy]) expect(await count(`id = $1 AND attempts = 1 AND last_error IS NOT NULL`, [job.id], ARCHIVE), `${job.engine} flaky`).toBe(1);
        for (const job of [deadBoss, deadLegacy]) {
          const { rows } = await pool.query(`SELECT attempts, failed_at IS NOT NULL AS failed, last_error IS NOT NULL AS err FROM delayed_jobs WHERE id = $1`, [job.id]);
          expect(rows, `${job.engine} dead`).toEqual([{ attempts: 3, failed: true, err: true }]);
        }
        expect(await team()).toEqual({ waiting: 2, held: 1, failed: 1 + 2 });
        expect(await disagreeing()).toBe(0);
        // A retried run went from running straight back to waiting, on either engine: never FAILED, never failed_at.
        const { rows: seen } = await pool.query<{ status: string; failed: boolean }>(`SELECT status, failed FROM delayed_job_seen WHERE job_id = ANY($1::bigint[])`, [[onceLegacy.id, onceBoss.id]]);
        expect(seen.length).toBeGreaterThan(2);
        expect(seen.filter((row) => row.status === 'FAILED' || row.failed)).toEqual([]);
      },
      rolledBack: async (report) => {
        expect(report).toMatchObject({ moved: 2 });
        expect(await count(`engine = 'LEGACY' AND "cutoverStatus" = 'PENDING' AND run_at > now() + interval '20 hours'`)).toBe(2);
        expect(await team()).toEqual({ waiting: 2, held: 1, failed: 3 });
        expect(await disagreeing()).toBe(0);
      },
      drained: async (report) => expect(report.types).toEqual([expect.objectContaining({ type: 'mailers', scheduled: 2 })]),
    });
  }, 180_000);
});

describe("the team's own delayed_job worker beside cutover", () => {
  /** delayed_job's reserve, run and delete: its own connection, no cutover mark, no engine filter unless patched. */
  async function teamWorker(patched: boolean) {
    const client = await teamClient(example);
    const filter = patched ? `AND "engine" = 'LEGACY' AND "workerId" IS NULL` : '';
    const destroy = (id: string) => client.query(`DELETE FROM delayed_jobs WHERE id = $1`, [id]);
    return {
      reserve: async () =>
        (
          await client.query<{ id: string }>(
            `UPDATE delayed_jobs SET locked_at = now(), locked_by = 'host:2 pid:7', updated_at = now()
              WHERE id IN (SELECT id FROM delayed_jobs WHERE (run_at IS NULL OR run_at <= now()) AND (locked_at IS NULL OR locked_at < now() - interval '4 hours')
                             AND failed_at IS NULL ${filter} ORDER BY priority ASC, run_at ASC LIMIT 1 FOR UPDATE SKIP LOCKED)
              RETURNING id::text`,
          )
        ).rows[0]?.id,
      succeed: async (id: string) => {
        await client.query(`INSERT INTO delayed_job_runs (job_id, engine, priority) SELECT id, 'TEAM', priority FROM delayed_jobs WHERE id = $1`, [id]);
        await destroy(id);
      },
      destroy,
      close: () => client.end(),
    };
  }

  it('unpatched, its reserve and its delete of a pg-boss row are refused by the guard; patched, it works beside pg-boss with nothing lost or doubled', async () => {
    const { pool, producer } = example;
    const { boss, own } = await besideTeamRunner(example, {
      // Only this test's rows wait: the team's held row and the scheduled ones are not due or not free.
      clearRuns: async () => void (await pool.query(`DELETE FROM delayed_job_runs`)),
      // Urgent in cutover's terms (higher first): the most urgent end of the table's column.
      boss: async () => {
        const sent = await producer.manager.enqueueMany('mailers', Array.from({ length: 3 }, (_, i) => ({ payload: mail(`boss${i}@example.com`, 0), priority: 10 })));
        expect(await count(`id = ANY($1::bigint[]) AND priority = -10`, [sent.map((job) => job.id)])).toBe(3);
        return sent;
      },
      own: async () =>
        (
          await pool.query<{ id: string }>(
            `INSERT INTO delayed_jobs (queue, priority, handler, run_at, created_at, updated_at)
             SELECT 'mailers', 5, json_build_object('to', 'team' || n || '@example.com', 'rank', 5)::text, now(), now(), now() FROM generate_series(1, 4) n RETURNING id::text`,
          )
        ).rows.map((row) => row.id),
      refused: async (boss) => {
        const unpatched = await teamWorker(false);
        try {
          await expect(unpatched.reserve()).rejects.toThrow(/cutover guard: row \d+ of public\.delayed_jobs belongs to pg-boss/);
          // Its success deletes the row: refused on a row pg-boss owns, which stays.
          await expect(unpatched.destroy(boss[0]!.id)).rejects.toThrow(/cutover guard: row \d+ of public\.delayed_jobs belongs to pg-boss/);
          expect(await count(`id = $1 AND engine = 'PGBOSS'`, [boss[0]!.id])).toBe(1);
        } finally {
          await unpatched.close();
        }
      },
      patched: async (own) => {
        const patched = await teamWorker(true);
        try {
          const reserved: string[] = [];
          for (let id = await patched.reserve(); id; id = await patched.reserve()) {
            reserved.push(id);
            await patched.succeed(id);
          }
          expect(reserved.sort()).toEqual([...own].sort());
        } finally {
          await patched.close();
        }
      },
      // cutover's own delete of a success (the move to its archive) still goes through the guard.
      bossDone: async (boss) => (await count(`id = ANY($1::bigint[])`, [boss.map((job) => job.id)], ARCHIVE)) === 3,
    });
    const runs = await runsPerJob();
    for (const job of boss) expect(runs.get(job.id)).toEqual(['PGBOSS']);
    for (const id of own) expect(runs.get(id)).toEqual(['TEAM']);
    expect(await count(`id = ANY($1::bigint[])`, [[...own, ...boss.map((job) => job.id)]])).toBe(0);
    expect(await disagreeing()).toBe(0);
  }, 120_000);
});
