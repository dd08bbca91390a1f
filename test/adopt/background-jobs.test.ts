// A job table with no status column adopts end to end (examples/background-jobs): the state is
// derived from succeededAt, attempts (failed runs) and maxAttempts, failures are recorded in
// lastError and lastFailedAttemptAt, the payload is JSON in a text column, and the team's
// runner selects due rows, runs them and writes the outcome, claiming nothing.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runnerFilters } from '../../src/adopt/adopt.js';
import { loadConfigFile } from '../../src/config/file.js';
import { bindLegacyTable } from '../../src/table/table.js';
import { stopWorkers as stop, useExample } from '../helpers/example.js';
import { besideTeamRunner, runShapeFlow, teamClient, type HistoryJobs } from '../helpers/shape.js';
import { pollUntil } from '../helpers/wait.js';

const TABLE = '"BackgroundJob"';
/** The team's own questions of its table, as its dashboards ask them. */
const TEAM = {
  waiting: `"succeededAt" IS NULL AND attempts < "maxAttempts"`,
  due: `"succeededAt" IS NULL AND attempts < "maxAttempts" AND "scheduledAt" <= now()`,
  succeeded: `"succeededAt" IS NOT NULL`,
  failed: `"succeededAt" IS NULL AND attempts >= "maxAttempts"`,
};
/** The jobs with a history the end-to-end flow made, for the tests after it. */
let history: HistoryJobs | undefined;
const deliver = (url: string, failTimes?: number) => ({ url, ...(failTimes === undefined ? {} : { failTimes }) });

const example = useExample('background-jobs', async (pool) => {
  // Before cutover: ten due rows, three for tomorrow, two that succeeded, one failed for good.
  await pool.query(`INSERT INTO ${TABLE} (name, payload) SELECT 'webhook.deliver', json_build_object('url', 'https://a.example/' || n)::text FROM generate_series(1, 10) n`);
  await pool.query(
    `INSERT INTO ${TABLE} (name, payload, "scheduledAt") SELECT 'webhook.deliver', json_build_object('url', 'https://later.example/' || n)::text, now() + interval '1 day' FROM generate_series(1, 3) n`,
  );
  await pool.query(`INSERT INTO ${TABLE} (name, payload, "succeededAt") SELECT 'webhook.deliver', '{"url":"https://old.example/"}', now() FROM generate_series(1, 2)`);
  await pool.query(
    `INSERT INTO ${TABLE} (name, payload, attempts, "lastError", "lastFailedAttemptAt") VALUES ('webhook.deliver', '{"url":"https://dead.example/"}', 3, 'gone', now())`,
  );
});
const cli = (...args: string[]) => example.cli(...args);
const count = async (where: string, values: unknown[] = []) => Number((await example.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${TABLE} WHERE ${where}`, values)).rows[0]!.n);
const team = async () => ({ waiting: await count(TEAM.waiting), succeeded: await count(TEAM.succeeded), failed: await count(TEAM.failed) });
/** Rows whose cutover status says something else than the team's own columns do (none running). */
const disagreeing = () =>
  count(`"cutoverStatus" <> CASE WHEN "succeededAt" IS NOT NULL THEN 'COMPLETED' WHEN attempts >= "maxAttempts" THEN 'FAILED' ELSE 'PENDING' END`);

async function runsPerJob(): Promise<Map<string, string[]>> {
  const { rows } = await example.pool.query<{ id: string; engines: string[] }>(`SELECT "jobId"::text AS id, array_agg(engine ORDER BY id) AS engines FROM "BackgroundJobRun" GROUP BY 1`);
  return new Map(rows.map((row) => [row.id, row.engines]));
}

describe('adopting a table with no status column (state from timestamps and counters)', () => {
  it('init backfills cutover’s status from each row’s state and prints the filters and every added column', async () => {
    expect(await team()).toEqual({ waiting: 13, succeeded: 2, failed: 1 });
    expect(await disagreeing()).toBe(0);
    expect(await count(`"cutoverStatus" = 'COMPLETED'`)).toBe(2);
    expect(await count(`"cutoverStatus" = 'FAILED'`)).toBe(1);

    // init again, after db migrate added the columns it lacked: the same migration, nothing written.
    const again = await cli('init');
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain('nothing written');
    const config = await loadConfigFile(undefined, example.project);
    const filters = runnerFilters(await bindLegacyTable(example.pool, config.legacy!));
    expect(filters[0]).toMatch(/^select-then-run: SELECT \.\.\. FROM "public"\."BackgroundJob" WHERE "succeededAt" IS NULL AND "attempts" < "maxAttempts" AND "scheduledAt" <= now\(\) AND "engine" = 'LEGACY' AND "workerId" IS NULL/);

    // Every column the applied adoption migration added is in the Prisma fields printed after it.
    const dir = join(example.project, 'prisma', 'migrations');
    const [migration] = await readdir(dir);
    const sql = await readFile(join(dir, migration!, 'migration.sql'), 'utf8');
    const added = [...sql.matchAll(/ADD COLUMN IF NOT EXISTS "([^"]+)"/g)].map((match) => match[1]!);
    expect(added).toEqual(expect.arrayContaining(['cutoverStatus', 'updatedAt', 'startedAt', 'engine', 'runAfter']));
    const prisma = await cli('init', '--prisma');
    for (const column of added) expect(prisma.stdout, column).toMatch(new RegExp(`^  ${column} `, 'm'));
    expect(prisma.stdout).toMatch(/^ {2}cutoverStatus +String @default\("PENDING"\)$/m);
  });

  it('routes at 50 %, moves the backlog with its schedule, runs both engines, reconciles clean, rolls back, and the team’s queries agree throughout', async () => {
    const { pool } = example;
    history = await runShapeFlow(example, {
      type: 'webhook.deliver',
      payload: (name, failTimes) => deliver(`https://${name}.example/`, failTimes),
      dueBacklog: 10,
      batch: 20,
      runsPerJob,
      allDone: async () => (await count(`${TEAM.due} OR "cutoverStatus" IN ('PENDING', 'RUNNING') AND "scheduledAt" <= now()`)) === 0,
      enqueued: async (sent) => {
        // A payload is JSON text, as the team's producers write it.
        const { rows } = await pool.query<{ payload: string }>(`SELECT payload FROM ${TABLE} WHERE id = $1`, [sent[0]!.id]);
        expect(JSON.parse(rows[0]!.payload)).toEqual({ url: 'https://new-0.example/' });
      },
      migrated: async () => {
        const { rows: scheduled } = await pool.query<{ at: Date; start_after: Date }>(
          `SELECT j."scheduledAt" AS at, b.start_after FROM ${TABLE} j JOIN pgboss.job b ON b.name = j.name AND b.id = j."pgbossJobId" WHERE j."scheduledAt" > now()`,
        );
        expect(scheduled).toHaveLength(3);
        for (const row of scheduled) expect(row.start_after).toEqual(row.at);
        expect(await count(`engine = 'LEGACY' AND "cutoverStatus" = 'PENDING'`)).toBe(0);
      },
      ran: async ({ onceBoss, onceLegacy, deadBoss, deadLegacy, sent }) => {
        // The team's columns mean what they meant: succeededAt only on success, attempts = failed
        // runs, and lastError keeping the last failure's message through a success.
        const row = async (id: string) =>
          (await pool.query(`SELECT attempts, "succeededAt" IS NOT NULL AS ok, "lastError" IS NOT NULL AS err, "lastFailedAttemptAt" IS NOT NULL AS failed_at FROM ${TABLE} WHERE id = $1`, [id]))
            .rows[0];
        for (const job of [onceBoss, onceLegacy]) expect(await row(job.id), `${job.engine} flaky`).toEqual({ attempts: 1, ok: true, err: true, failed_at: true });
        for (const job of [deadBoss, deadLegacy]) expect(await row(job.id), `${job.engine} dead`).toEqual({ attempts: 3, ok: false, err: true, failed_at: true });
        expect(await row(sent[0]!.id)).toMatchObject({ attempts: 0, ok: true, err: false, failed_at: false });
        // While it ran, every job read as waiting to the team's own query, its last run included.
        const { rows: during } = await pool.query<{ engine: string; teamWaiting: boolean }>(`SELECT engine, "teamWaiting" FROM "BackgroundJobRun" WHERE NOT "teamWaiting"`);
        expect(during).toEqual([]);
        expect(await team()).toEqual({ waiting: 3, succeeded: 2 + 10 + 20 + 2, failed: 1 + 2 });
        expect(await disagreeing()).toBe(0);
      },
      rolledBack: async (report) => {
        // The scheduled rows come back with their time, waiting for the team's runner.
        expect(report).toMatchObject({ moved: 3 });
        expect(await count(`engine = 'LEGACY' AND "cutoverStatus" = 'PENDING' AND "scheduledAt" > now() + interval '20 hours'`)).toBe(3);
        expect(await team()).toEqual({ waiting: 3, succeeded: 34, failed: 3 });
        expect(await disagreeing()).toBe(0);
      },
      drained: async (report) => expect(report.types).toEqual([expect.objectContaining({ type: 'webhook.deliver', scheduled: 3 })]),
    });
  }, 180_000);
});

describe("the team's own select-then-run runner beside cutover", () => {
  /** Selects due rows, runs each, then writes its outcome: its own connection, no cutover mark, no engine filter unless patched. */
  async function teamRunner(patched: boolean) {
    const client = await teamClient(example);
    const filter = patched ? `AND "engine" = 'LEGACY' AND "workerId" IS NULL` : '';
    return {
      due: async () => (await client.query<{ id: number }>(`SELECT id FROM ${TABLE} WHERE ${TEAM.due} ${filter} ORDER BY id LIMIT 50`)).rows.map((r) => String(r.id)),
      run: async (id: string) => {
        await client.query(`INSERT INTO "BackgroundJobRun" ("jobId", engine) VALUES ($1, 'TEAM')`, [id]);
        await client.query(`UPDATE ${TABLE} SET "succeededAt" = now() WHERE id = $1`, [id]);
      },
      fail: (id: string) => client.query(`UPDATE ${TABLE} SET attempts = attempts + 1, "lastError" = 'boom', "lastFailedAttemptAt" = now() WHERE id = $1`, [id]),
      close: () => client.end(),
    };
  }

  it('unpatched, its outcome write on a pg-boss row is refused by the guard; patched, it runs beside pg-boss with nothing lost or doubled', async () => {
    const { pool, producer } = example;
    let teamIds: string[] = [];
    const { boss } = await besideTeamRunner(example, {
      clearRuns: async () => void (await pool.query(`DELETE FROM "BackgroundJobRun"`)),
      boss: () => producer.manager.enqueueMany('webhook.deliver', Array.from({ length: 4 }, (_, i) => ({ payload: deliver(`https://boss.example/${i}`) }))),
      // The team's producers insert rows of their own: the trigger gives them cutover's status.
      own: async () => {
        const { rows } = await pool.query<{ id: number }>(
          `INSERT INTO ${TABLE} (name, payload) SELECT 'webhook.deliver', json_build_object('url', 'https://team.example/' || n)::text FROM generate_series(1, 5) n RETURNING id`,
        );
        return (teamIds = rows.map((r) => String(r.id)));
      },
      refused: async (boss) => {
        const unpatched = await teamRunner(false);
        try {
          expect(await unpatched.due()).toEqual(expect.arrayContaining(boss.map((job) => job.id)));
          await expect(unpatched.run(boss[0]!.id)).rejects.toThrow(/cutover guard: row \d+ of public\.BackgroundJob belongs to pg-boss/);
          await expect(unpatched.fail(boss[1]!.id)).rejects.toThrow(/cutover guard/);
        } finally {
          await unpatched.close();
        }
        await pool.query(`DELETE FROM "BackgroundJobRun"`);
      },
      patched: async (own) => {
        const patched = await teamRunner(true);
        try {
          expect((await patched.due()).sort()).toEqual([...own].sort());
          await patched.fail(own.sort()[0]!);
          for (const id of await patched.due()) await patched.run(id);
          expect(await patched.due()).toEqual([]);
        } finally {
          await patched.close();
        }
      },
      bossDone: async (boss) => (await count(`id = ANY($1::int[]) AND "succeededAt" IS NOT NULL`, [boss.map((job) => job.id)])) === 4,
    });
    const runs = await runsPerJob();
    for (const job of boss) expect(runs.get(job.id)).toEqual(['PGBOSS']);
    for (const id of teamIds) expect(runs.get(id)).toEqual(['TEAM']);
    expect(await count(`id = $1 AND attempts = 1 AND "succeededAt" IS NOT NULL AND "cutoverStatus" = 'COMPLETED'`, [teamIds.sort()[0]])).toBe(1);
    expect(await disagreeing()).toBe(0);
  }, 120_000);
});

describe('a dead letter sent back to its queue', () => {
  it('reads as waiting to the team’s own queries until it runs (one run more allowed, its attempts kept), then as failed again', async () => {
    const dead = history!.deadBoss;
    expect((await cli('rollout', 'unkill')).code).toBe(0);
    expect(await count(`id = $1 AND ${TEAM.failed}`, [dead.id])).toBe(1);
    const retried = await cli('dlq', 'retry', '--type', 'webhook.deliver', '--id', dead.pgbossJobId!, '--json');
    expect(retried.code, retried.stderr).toBe(0);
    expect(JSON.parse(retried.stdout)).toMatchObject({ retried: 1 });
    // As a team's own "retry this job" would leave it: its three failed runs kept, one run more allowed.
    expect(await count(`id = $1 AND ${TEAM.waiting} AND attempts = 3 AND "maxAttempts" = 4`, [dead.id])).toBe(1);
    expect(await disagreeing()).toBe(0);

    const before = (await runsPerJob()).get(dead.id)?.length ?? 0;
    const pgboss = example.worker('pgboss');
    await pollUntil('the job sent back to fail again', async () => (await count(`id = $1 AND ${TEAM.failed}`, [dead.id])) === 1, { timeoutMs: 60_000 });
    await stop([pgboss]);
    expect((await runsPerJob()).get(dead.id)).toHaveLength(before + 1);
    expect(await count(`id = $1 AND attempts = 4 AND "cutoverStatus" = 'FAILED'`, [dead.id])).toBe(1);
  }, 120_000);
});
