// A table whose counters mean something else adopts end to end (examples/workflow-runs): a
// status enum of its own, "retried" counting retries (not runs), "maxRetries" allowing
// maxRetries + 1 runs, and a child table of steps pointing at the run. Then the team's own
// claiming runner, unpatched and patched, beside pg-boss.
import { describe, expect, it } from 'vitest';
import type { EnqueueResult } from '../../src/rollout/manager.js';
import { setPercent } from '../helpers/engines.js';
import { useExample } from '../helpers/example.js';
import { besideTeamRunner, runShapeFlow, teamClient } from '../helpers/shape.js';

const TABLE = '"WorkflowRun"';
const TEAM = {
  waiting: `state = 'QUEUED'`,
  succeeded: `state = 'SUCCEEDED'`,
  failed: `state = 'FAILED'`,
  // The team's own invariant: a run never retries more often than it may.
  overrun: `retried > "maxRetries"`,
};
/** The orders of the flow's jobs with a history; its batch is orders 300 and on. */
const orderIds = new Map([
  ['flaky-boss', 200],
  ['down-boss', 201],
  ['flaky-legacy', 400],
  ['down-legacy', 401],
]);
const order = (orderId: number, failTimes?: number) => ({ orderId, ...(failTimes === undefined ? {} : { failTimes }) });

const example = useExample('workflow-runs', async (pool) => {
  await pool.query(`INSERT INTO ${TABLE} (workflow, input, "updatedAt") SELECT 'order.fulfil', json_build_object('orderId', n), now() FROM generate_series(1, 10) n`);
  // A run on its second try (one retry made), and one that succeeded after two.
  await pool.query(`INSERT INTO ${TABLE} (workflow, input, retried, "updatedAt") VALUES ('order.fulfil', '{"orderId": 100}', 1, now())`);
  await pool.query(`INSERT INTO ${TABLE} (workflow, input, retried, state, "finishedAt", "updatedAt") VALUES ('order.fulfil', '{"orderId": 101}', 2, 'SUCCEEDED', now(), now())`);
});
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
    let later: EnqueueResult | undefined;
    await runShapeFlow(example, {
      type: 'order.fulfil',
      payload: (name, failTimes) => order(orderIds.get(name) ?? 300 + Number(name.replace(/\D/g, '')), failTimes),
      dueBacklog: 11,
      batch: 12,
      runsPerJob: stepsPerRun,
      allDone: async () => (await count(`state IN ('QUEUED', 'RUNNING')`)) === 0,
      // cutover's tracking rows say the limit as the table does: 3 runs are maxRetries 2.
      enqueued: async (_sent, { deadBoss }) => expect(await count(`id = $1 AND "maxRetries" = 2 AND retried = 0`, [deadBoss.id])).toBe(1),
      migrated: async () => {
        // The run on its second try keeps the runs it has left in pg-boss (maxRetries 2 allow 3; 1 made).
        const { rows: budget } = await pool.query<{ retry_limit: number; retry_count: number }>(
          `SELECT b.retry_limit, b.retry_count FROM ${TABLE} j JOIN pgboss.job b ON b.id = j."pgbossJobId" WHERE j.input->>'orderId' = '100'`,
        );
        expect(budget).toEqual([{ retry_limit: 2, retry_count: 1 }]);
      },
      ran: async ({ onceBoss, onceLegacy, deadBoss, deadLegacy, sent }) => {
        const retried = async (id: string) => (await pool.query<{ retried: number; state: string }>(`SELECT retried, state::text FROM ${TABLE} WHERE id = $1`, [id])).rows[0];
        for (const job of [onceBoss, onceLegacy]) expect(await retried(job.id), `${job.engine} flaky`).toEqual({ retried: 1, state: 'SUCCEEDED' });
        for (const job of [deadBoss, deadLegacy]) expect(await retried(job.id), `${job.engine} dead`).toEqual({ retried: 2, state: 'FAILED' });
        expect(await retried(sent[0]!.id)).toEqual({ retried: 0, state: 'SUCCEEDED' });
        // While a step ran, its run's "retried" said the retries made before it: never more than maxRetries.
        const { rows: during } = await pool.query(`SELECT s.engine, s.attempt, s."retriedSeen" FROM "WorkflowStep" s WHERE s."retriedSeen" IS DISTINCT FROM s.attempt - 1`);
        expect(during).toEqual([]);
        expect(await team()).toEqual({ waiting: 0, succeeded: 1 + 11 + 12 + 2, failed: 2, overrun: 0 });
      },
      // Scheduled runs go to pg-boss and come back on rollback with their time.
      rollingBack: async () => {
        await setPercent(pool, 100);
        producer.flags.invalidate();
        later = await producer.manager.enqueue('order.fulfil', order(500));
        await pool.query(`UPDATE ${TABLE} SET "notBefore" = now() + interval '1 day' WHERE id = $1`, [later.id]);
      },
      rolledBack: async () => expect(await count(`id = $1 AND state = 'QUEUED' AND engine = 'LEGACY' AND retried = 0`, [later!.id])).toBe(1),
    });
  }, 180_000);
});

describe("the team's own runner beside cutover", () => {
  async function teamRunner(patched: boolean) {
    const client = await teamClient(example);
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
    await pool.query(`UPDATE ${TABLE} SET state = 'CANCELLED' WHERE state = 'QUEUED'`);
    const { boss, own } = await besideTeamRunner(example, {
      clearRuns: async () => void (await pool.query(`DELETE FROM "WorkflowStep"`)),
      boss: () => producer.manager.enqueueMany('order.fulfil', Array.from({ length: 3 }, (_, i) => ({ payload: order(600 + i), priority: 5 }))),
      own: async () =>
        (
          await pool.query<{ id: string }>(
            `INSERT INTO ${TABLE} (workflow, input, "updatedAt") SELECT 'order.fulfil', json_build_object('orderId', 700 + n), now() FROM generate_series(1, 4) n RETURNING id::text`,
          )
        ).rows.map((row) => row.id),
      refused: async () => {
        const unpatched = await teamRunner(false);
        try {
          await expect(unpatched.claim()).rejects.toThrow(/cutover guard: row [0-9a-f-]+ of public\.WorkflowRun belongs to pg-boss/);
        } finally {
          await unpatched.close();
        }
      },
      patched: async (own) => {
        const patched = await teamRunner(true);
        try {
          const claimed: string[] = [];
          for (let id = await patched.claim(); id; id = await patched.claim()) {
            claimed.push(id);
            await patched.finish(id);
          }
          expect(claimed.sort()).toEqual([...own].sort());
        } finally {
          await patched.close();
        }
      },
      bossDone: async (boss) => (await count(`id = ANY($1::uuid[]) AND state = 'SUCCEEDED'`, [boss.map((job) => job.id)])) === 3,
    });
    const steps = await stepsPerRun();
    for (const job of boss) expect(steps.get(job.id)).toEqual(['PGBOSS']);
    for (const id of own) expect(steps.get(id)).toEqual(['TEAM']);
  }, 120_000);
});
