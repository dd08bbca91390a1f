// A job table with no status column adopts end to end (examples/background-jobs): the state is
// derived from succeededAt, attempts (failed runs) and maxAttempts, failures are recorded in
// lastError and lastFailedAttemptAt, the payload is JSON in a text column, and the team's
// runner selects due rows, runs them and writes the outcome, claiming nothing.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { runnerFilters } from '../../src/adopt/adopt.js';
import { loadConfigFile } from '../../src/config/file.js';
import { bindLegacyTable } from '../../src/table/table.js';
import { setPercent } from '../helpers/engines.js';
import { stopWorkers as stop, useExample } from '../helpers/example.js';
import { pollUntil } from '../helpers/wait.js';

const TABLE = '"BackgroundJob"';
/** The team's own questions of its table, as its dashboards ask them. */
const TEAM = {
  waiting: `"succeededAt" IS NULL AND attempts < "maxAttempts"`,
  due: `"succeededAt" IS NULL AND attempts < "maxAttempts" AND "scheduledAt" <= now()`,
  succeeded: `"succeededAt" IS NOT NULL`,
  failed: `"succeededAt" IS NULL AND attempts >= "maxAttempts"`,
};
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
    const { pool, producer } = example;
    const preflight = await cli('preflight', '--json', '--type', 'webhook.deliver');
    // Before any worker is started, only the live-worker checks may fail.
    const failing = (JSON.parse(preflight.stdout) as { checks: { check: string; status: string }[] }).checks.filter((check) => check.status === 'fail');
    expect(failing.map((check) => check.check).filter((name) => !/runner|worker/.test(name)), preflight.stdout).toEqual([]);

    expect((await cli('rollout', 'set', '50', '--yes')).code).toBe(0);
    const sent = await producer.manager.enqueueMany('webhook.deliver', Array.from({ length: 20 }, (_, i) => ({ payload: deliver(`https://new.example/${i}`) })));
    expect(sent.filter((job) => job.engine === 'PGBOSS').length).toBeGreaterThan(3);
    // A payload is JSON text, as the team's producers write it.
    const { rows: stored } = await pool.query<{ payload: string }>(`SELECT payload FROM ${TABLE} WHERE id = $1`, [sent[0]!.id]);
    expect(JSON.parse(stored[0]!.payload)).toEqual({ url: 'https://new.example/0' });
    // Fails once then succeeds; fails for good (three runs) — one of each on each engine.
    const onceBoss = await producer.manager.enqueue('webhook.deliver', deliver('https://flaky.example/boss', 1), { key: 'k-boss-1' });
    const deadBoss = await producer.manager.enqueue('webhook.deliver', deliver('https://down.example/boss', 9), { key: 'k-boss-2' });

    const moved = await cli('migrate', '--json');
    expect(moved.code, moved.stderr).toBe(0);
    const { rows: scheduled } = await pool.query<{ at: Date; start_after: Date }>(
      `SELECT j."scheduledAt" AS at, b.start_after FROM ${TABLE} j JOIN pgboss.job b ON b.name = j.name AND b.id = j."pgbossJobId" WHERE j."scheduledAt" > now()`,
    );
    expect(scheduled).toHaveLength(3);
    for (const row of scheduled) expect(row.start_after).toEqual(row.at);
    expect(await count(`engine = 'LEGACY' AND "cutoverStatus" = 'PENDING'`)).toBe(0);

    await setPercent(pool, 0);
    producer.flags.invalidate();
    const onceLegacy = await producer.manager.enqueue('webhook.deliver', deliver('https://flaky.example/legacy', 1));
    const deadLegacy = await producer.manager.enqueue('webhook.deliver', deliver('https://down.example/legacy', 9));
    expect([onceLegacy.engine, deadLegacy.engine]).toEqual(['LEGACY', 'LEGACY']);

    const workers = [example.worker('legacy'), example.worker('pgboss')];
    await pollUntil('every due job done', async () => (await count(`${TEAM.due} OR "cutoverStatus" IN ('PENDING', 'RUNNING') AND "scheduledAt" <= now()`)) === 0, {
      timeoutMs: 90_000,
      intervalMs: 250,
    });
    await stop(workers);

    // Each job ran once, the flaky ones twice, the dead ones as often as maxAttempts allows.
    const runs = await runsPerJob();
    const expected = new Map<string, number>([
      [onceBoss.id, 2],
      [onceLegacy.id, 2],
      [deadBoss.id, 3],
      [deadLegacy.id, 3],
    ]);
    expect(runs.size).toBe(10 + 20 + 4);
    for (const [id, engines] of runs) expect(engines, `job ${id}`).toHaveLength(expected.get(id) ?? 1);

    // The team's columns mean what they meant: succeededAt only on success, attempts = failed runs.
    const row = async (id: string) =>
      (await pool.query(`SELECT attempts, "succeededAt" IS NOT NULL AS ok, "lastError" IS NOT NULL AS err, "lastFailedAttemptAt" IS NOT NULL AS failed_at FROM ${TABLE} WHERE id = $1`, [id]))
        .rows[0];
    for (const job of [onceBoss, onceLegacy]) expect(await row(job.id), `${job.engine} flaky`).toMatchObject({ attempts: 1, ok: true, failed_at: true });
    for (const job of [deadBoss, deadLegacy]) expect(await row(job.id), `${job.engine} dead`).toEqual({ attempts: 3, ok: false, err: true, failed_at: true });
    expect(await row(sent[0]!.id)).toMatchObject({ attempts: 0, ok: true, failed_at: false });
    expect(await team()).toEqual({ waiting: 3, succeeded: 2 + 10 + 20 + 2, failed: 1 + 2 });
    expect(await disagreeing()).toBe(0);

    const reconciled = await cli('reconcile', '--grace', '0', '--json');
    expect(JSON.parse(reconciled.stdout).total, reconciled.stdout).toBe(0);
    expect(reconciled.code).toBe(0);

    // Rollback: the scheduled rows come back with their time, waiting for the team's runner.
    const back = await cli('rollback', '--yes', '--json');
    expect(back.code, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({ moved: 3 });
    expect(await count(`engine = 'LEGACY' AND "cutoverStatus" = 'PENDING' AND "scheduledAt" > now() + interval '20 hours'`)).toBe(3);
    expect(await team()).toEqual({ waiting: 3, succeeded: 34, failed: 3 });
    expect(await disagreeing()).toBe(0);

    const drain = await cli('drain-report', '--json');
    expect(drain.stdout, drain.stderr).not.toBe('');
    expect(JSON.parse(drain.stdout).types).toEqual([expect.objectContaining({ type: 'webhook.deliver', scheduled: 3 })]);
  }, 180_000);
});

describe("the team's own select-then-run runner beside cutover", () => {
  /** Selects due rows, runs each, then writes its outcome: its own connection, no cutover mark, no engine filter unless patched. */
  async function teamRunner(patched: boolean) {
    const client = new pg.Client({ connectionString: example.database.url, options: '-c TimeZone=UTC' });
    await client.connect();
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
    expect((await cli('rollout', 'unkill')).code).toBe(0);
    await pool.query(`DELETE FROM "BackgroundJobRun"`);
    await setPercent(pool, 100);
    producer.flags.invalidate();
    const boss = await producer.manager.enqueueMany('webhook.deliver', Array.from({ length: 4 }, (_, i) => ({ payload: deliver(`https://boss.example/${i}`) })));
    expect(boss.every((job) => job.engine === 'PGBOSS')).toBe(true);
    // The team's producers insert rows of their own: the trigger gives them cutover's status.
    const { rows: own } = await pool.query<{ id: number }>(
      `INSERT INTO ${TABLE} (name, payload) SELECT 'webhook.deliver', json_build_object('url', 'https://team.example/' || n)::text FROM generate_series(1, 5) n RETURNING id`,
    );
    const teamIds = own.map((r) => String(r.id));

    const unpatched = await teamRunner(false);
    try {
      const seen = await unpatched.due();
      expect(seen).toEqual(expect.arrayContaining(boss.map((job) => job.id)));
      await expect(unpatched.run(boss[0]!.id)).rejects.toThrow(/cutover guard: row \d+ of public\.BackgroundJob belongs to pg-boss/);
      await expect(unpatched.fail(boss[1]!.id)).rejects.toThrow(/cutover guard/);
    } finally {
      await unpatched.close();
    }
    await pool.query(`DELETE FROM "BackgroundJobRun"`);

    const patched = await teamRunner(true);
    const pgboss = example.worker('pgboss');
    try {
      const seen = await patched.due();
      expect(seen.sort()).toEqual(teamIds.sort());
      await patched.fail(seen[0]!);
      for (const id of await patched.due()) await patched.run(id);
      await pollUntil('pg-boss to finish its jobs', async () => (await count(`id = ANY($1::int[]) AND "succeededAt" IS NOT NULL`, [boss.map((job) => job.id)])) === 4, { timeoutMs: 60_000 });
      expect(await patched.due()).toEqual([]);
      await stop([pgboss]);
    } finally {
      await patched.close();
    }
    const runs = await runsPerJob();
    for (const job of boss) expect(runs.get(job.id)).toEqual(['PGBOSS']);
    for (const id of teamIds) expect(runs.get(id)).toEqual(['TEAM']);
    expect(await count(`id = $1 AND attempts = 1 AND "succeededAt" IS NOT NULL AND "cutoverStatus" = 'COMPLETED'`, [teamIds[0]])).toBe(1);
    expect(await disagreeing()).toBe(0);
  }, 120_000);
});
