// A table whose counters mean something else adopts end to end (examples/workflow-runs): a
// status enum of its own, "retried" counting retries (not runs), "maxRetries" allowing
// maxRetries + 1 runs, and a child table of steps pointing at the run. Then the team's own
// claiming runner, unpatched and patched, beside pg-boss.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { setPercent } from '../helpers/engines.js';
import { stopWorkers as stop, useExample } from '../helpers/example.js';
import { pollUntil } from '../helpers/wait.js';

const TABLE = '"WorkflowRun"';
const TEAM = {
  waiting: `state = 'QUEUED'`,
  succeeded: `state = 'SUCCEEDED'`,
  failed: `state = 'FAILED'`,
  // The team's own invariant: a run never retries more often than it may.
  overrun: `retried > "maxRetries"`,
};
const order = (orderId: number, failTimes?: number) => ({ orderId, ...(failTimes === undefined ? {} : { failTimes }) });

const example = useExample('workflow-runs', async (pool) => {
  await pool.query(`INSERT INTO ${TABLE} (workflow, input, "updatedAt") SELECT 'order.fulfil', json_build_object('orderId', n), now() FROM generate_series(1, 10) n`);
  // A run on its second try (one retry made), and one that succeeded after two.
  await pool.query(`INSERT INTO ${TABLE} (workflow, input, retried, "updatedAt") VALUES ('order.fulfil', '{"orderId": 100}', 1, now())`);
  await pool.query(`INSERT INTO ${TABLE} (workflow, input, retried, state, "finishedAt", "updatedAt") VALUES ('order.fulfil', '{"orderId": 101}', 2, 'SUCCEEDED', now(), now())`);
});
const cli = (...args: string[]) => example.cli(...args);
const count = async (where: string, values: unknown[] = []) => Number((await example.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${TABLE} WHERE ${where}`, values)).rows[0]!.n);
const team = async () => ({ waiting: await count(TEAM.waiting), succeeded: await count(TEAM.succeeded), failed: await count(TEAM.failed), overrun: await count(TEAM.overrun) });

async function stepsPerRun(): Promise<Map<string, string[]>> {
  const { rows } = await example.pool.query<{ id: string; engines: string[] }>(`SELECT "runId"::text AS id, array_agg(engine ORDER BY id) AS engines FROM "WorkflowStep" GROUP BY 1`);
  return new Map(rows.map((row) => [row.id, row.engines]));
}

describe('adopting a table whose attempts count retries and whose limit counts retries', () => {
  it('every run runs as often as maxRetries + 1 allows on both engines, retried counts retries, steps point at the run, reconcile is clean, rollback returns the rest', async () => {
    const { pool, producer } = example;
    expect(await team()).toEqual({ waiting: 11, succeeded: 1, failed: 0, overrun: 0 });

    await setPercent(pool, 100);
    producer.flags.invalidate();
    const onceBoss = await producer.manager.enqueue('order.fulfil', order(200, 1));
    const deadBoss = await producer.manager.enqueue('order.fulfil', order(201, 9));
    expect([onceBoss.engine, deadBoss.engine]).toEqual(['PGBOSS', 'PGBOSS']);
    // cutover's tracking rows say the limit as the table does: 3 runs are maxRetries 2.
    expect(await count(`id = $1 AND "maxRetries" = 2 AND retried = 0`, [deadBoss.id])).toBe(1);
    expect((await cli('rollout', 'set', '50', '--yes')).code).toBe(0);
    const sent = await producer.manager.enqueueMany('order.fulfil', Array.from({ length: 12 }, (_, i) => ({ payload: order(300 + i) })));
    expect(sent.filter((job) => job.engine === 'PGBOSS').length).toBeGreaterThan(1);

    // Migrated: the run on its second try keeps the runs it has left in pg-boss (maxRetries 2 allow 3; 1 made).
    const moved = await cli('migrate', '--json');
    expect(moved.code, moved.stderr).toBe(0);
    const { rows: budget } = await pool.query<{ retry_limit: number; retry_count: number }>(
      `SELECT b.retry_limit, b.retry_count FROM ${TABLE} j JOIN pgboss.job b ON b.id = j."pgbossJobId" WHERE j.input->>'orderId' = '100'`,
    );
    expect(budget).toEqual([{ retry_limit: 2, retry_count: 1 }]);

    await setPercent(pool, 0);
    producer.flags.invalidate();
    const onceLegacy = await producer.manager.enqueue('order.fulfil', order(400, 1));
    const deadLegacy = await producer.manager.enqueue('order.fulfil', order(401, 9));
    const workers = [example.worker('legacy'), example.worker('pgboss')];
    await pollUntil('every run done', async () => (await count(`state IN ('QUEUED', 'RUNNING')`)) === 0, { timeoutMs: 90_000, intervalMs: 250 });
    await stop(workers);

    const steps = await stepsPerRun();
    const expected = new Map<string, number>([
      [onceBoss.id, 2],
      [onceLegacy.id, 2],
      [deadBoss.id, 3],
      [deadLegacy.id, 3],
    ]);
    expect(steps.size).toBe(11 + 12 + 4);
    for (const [id, engines] of steps) expect(engines, `run ${id}`).toHaveLength(expected.get(id) ?? 1);
    const retried = async (id: string) => (await pool.query<{ retried: number; state: string }>(`SELECT retried, state::text FROM ${TABLE} WHERE id = $1`, [id])).rows[0];
    for (const job of [onceBoss, onceLegacy]) expect(await retried(job.id), `${job.engine} flaky`).toEqual({ retried: 1, state: 'SUCCEEDED' });
    for (const job of [deadBoss, deadLegacy]) expect(await retried(job.id), `${job.engine} dead`).toEqual({ retried: 2, state: 'FAILED' });
    expect(await retried(sent[0]!.id)).toEqual({ retried: 0, state: 'SUCCEEDED' });
    expect(await team()).toEqual({ waiting: 0, succeeded: 1 + 11 + 12 + 2, failed: 2, overrun: 0 });

    const reconciled = await cli('reconcile', '--grace', '0', '--json');
    expect(JSON.parse(reconciled.stdout).total, reconciled.stdout).toBe(0);
    expect(reconciled.code).toBe(0);

    // Scheduled runs go to pg-boss and come back on rollback with their time.
    await setPercent(pool, 100);
    producer.flags.invalidate();
    const later = await producer.manager.enqueue('order.fulfil', order(500));
    await pool.query(`UPDATE ${TABLE} SET "notBefore" = now() + interval '1 day' WHERE id = $1`, [later.id]);
    const back = await cli('rollback', '--yes', '--json');
    expect(back.code, back.stderr).toBe(0);
    expect(await count(`id = $1 AND state = 'QUEUED' AND engine = 'LEGACY' AND retried = 0`, [later.id])).toBe(1);
    const drain = await cli('drain-report', '--json');
    expect(drain.stdout, drain.stderr).not.toBe('');
  }, 180_000);
});

describe("the team's own runner beside cutover", () => {
  async function teamRunner(patched: boolean) {
    const client = new pg.Client({ connectionString: example.database.url, options: '-c TimeZone=UTC' });
    await client.connect();
    const engine = patched ? `AND engine = 'LEGACY'` : '';
    return {
      claim: async () =>
        (
          await client.query<{ id: string }>(
            `UPDATE ${TABLE} SET state = 'RUNNING', "startedAt" = now(), "updatedAt" = now()
              WHERE id = (SELECT id FROM ${TABLE} WHERE state = 'QUEUED' ${engine} AND ("notBefore" IS NULL OR "notBefore" <= now()) ORDER BY priority DESC, "createdAt" LIMIT 1 FOR UPDATE SKIP LOCKED)
              RETURNING id::text`,
          )
        ).rows[0]?.id,
      finish: async (id: string) => {
        await client.query(`INSERT INTO "WorkflowStep" ("runId", name, engine, attempt) SELECT id, 'reserve', 'TEAM', retried + 1 FROM ${TABLE} WHERE id = $1`, [id]);
        await client.query(`UPDATE ${TABLE} SET state = 'SUCCEEDED', "finishedAt" = now(), "updatedAt" = now() WHERE id = $1`, [id]);
      },
      close: () => client.end(),
    };
  }

  it('unpatched, its claim of a pg-boss run is refused; patched, it runs beside pg-boss with nothing lost or doubled', async () => {
    const { pool, producer } = example;
    expect((await cli('rollout', 'unkill')).code).toBe(0);
    await pool.query(`UPDATE ${TABLE} SET state = 'CANCELLED' WHERE state = 'QUEUED'`);
    await pool.query(`DELETE FROM "WorkflowStep"`);
    await setPercent(pool, 100);
    producer.flags.invalidate();
    const boss = await producer.manager.enqueueMany('order.fulfil', Array.from({ length: 3 }, (_, i) => ({ payload: order(600 + i), priority: 5 })));
    const { rows: own } = await pool.query<{ id: string }>(
      `INSERT INTO ${TABLE} (workflow, input, "updatedAt") SELECT 'order.fulfil', json_build_object('orderId', 700 + n), now() FROM generate_series(1, 4) n RETURNING id::text`,
    );
    const unpatched = await teamRunner(false);
    try {
      await expect(unpatched.claim()).rejects.toThrow(/cutover guard: row [0-9a-f-]+ of public\.WorkflowRun belongs to pg-boss/);
    } finally {
      await unpatched.close();
    }
    const patched = await teamRunner(true);
    const pgboss = example.worker('pgboss');
    try {
      const claimed: string[] = [];
      for (let id = await patched.claim(); id; id = await patched.claim()) {
        claimed.push(id);
        await patched.finish(id);
      }
      expect(claimed.sort()).toEqual(own.map((row) => row.id).sort());
      await pollUntil('pg-boss to finish its runs', async () => (await count(`id = ANY($1::uuid[]) AND state = 'SUCCEEDED'`, [boss.map((job) => job.id)])) === 3, { timeoutMs: 60_000 });
      await stop([pgboss]);
    } finally {
      await patched.close();
    }
    const steps = await stepsPerRun();
    for (const job of boss) expect(steps.get(job.id)).toEqual(['PGBOSS']);
    for (const row of own) expect(steps.get(row.id)).toEqual(['TEAM']);
  }, 120_000);
});
