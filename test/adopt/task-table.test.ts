// A Prisma task table with a type column and a JSON payload, foreign keys both ways,
// a numeric money column, a scheduled time, and no updatedAt, startedAt, error or retry chain
// of its own (examples/task-table) adopts end to end.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { setPercent } from '../helpers/engines.js';
import { stopWorkers, useExample } from '../helpers/example.js';
import { pollUntil } from '../helpers/wait.js';

const TYPE = 'invoice.render';

const example = useExample('task-table', async (pool) => {
  await pool.query(`INSERT INTO "User" (id, email) VALUES ('u1', 'a@example.com'), ('u2', 'b@example.com')`);
  // The team's rows before cutover: due now, and scheduled for tomorrow.
  await pool.query(
    `INSERT INTO "Task" (id, kind, data, "userId", "scheduledFor")
     SELECT 'old_' || n, $1, jsonb_build_object('invoiceId', n), CASE WHEN n % 2 = 0 THEN 'u1' ELSE 'u2' END,
            CASE WHEN n > 12 THEN now() AT TIME ZONE 'UTC' + interval '1 day' END
       FROM generate_series(1, 15) n`,
    [TYPE],
  );
});

const count = async (where: string) => Number((await example.pool.query<{ n: string }>(`SELECT count(*) AS n FROM "Task" WHERE ${where}`)).rows[0]!.n);

describe('adopting a task table that lacks bookkeeping, with foreign keys both ways', () => {
  it('init adds what the table lacks; routed, migrated (schedules kept), run once on both engines, reconciled clean, rolled back', async () => {
    const { cli, pool, producer, project } = example;
    const [migration] = await readdir(join(project, 'prisma', 'migrations'));
    const sql = await readFile(join(project, 'prisma', 'migrations', migration!, 'migration.sql'), 'utf8');
    for (const added of ['"updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP', '"startedAt" TIMESTAMPTZ(3)', '"error" TEXT', '"originalJobId" text']) {
      expect(sql).toContain(`ADD COLUMN IF NOT EXISTS ${added}`);
    }

    expect((await cli('rollout', 'set', '50', '--yes')).code).toBe(0);
    // Tracking rows satisfy the user foreign key through toRow.
    const sent = await producer.manager.enqueueMany(TYPE, Array.from({ length: 30 }, (_, i) => ({ payload: { userId: i % 2 ? 'u1' : 'u2', invoiceId: 100 + i } })));
    expect(sent.filter((job) => job.engine === 'PGBOSS').length).toBeGreaterThan(3);
    await expect(producer.manager.enqueue(TYPE, { userId: 'nobody', invoiceId: 1 })).rejects.toThrow(/foreign key/);

    const moved = await cli('migrate', '--json');
    expect(moved.code, moved.stderr).toBe(0);
    const { rows: scheduled } = await pool.query<{ due: Date; start_after: Date }>(
      `SELECT t."scheduledFor" AS due, b.start_after FROM "Task" t JOIN pgboss.job b ON b.name = t.kind AND b.id = t."pgbossJobId" WHERE t."scheduledFor" IS NOT NULL`,
    );
    expect(scheduled).toHaveLength(3);
    for (const row of scheduled) expect(row.start_after).toEqual(row.due);

    await setPercent(pool, 0);
    producer.flags.invalidate();
    const late = await producer.manager.enqueueMany(TYPE, Array.from({ length: 5 }, (_, i) => ({ payload: { userId: 'u1', invoiceId: 200 + i } })));
    expect(late.every((job) => job.engine === 'LEGACY')).toBe(true);
    const workers = [example.worker('legacy'), example.worker('pgboss')];
    await pollUntil('every due task finished', async () => (await count(`state IN ('WAITING', 'ACTIVE') AND "scheduledFor" IS NULL`)) === 0, { timeoutMs: 90_000, intervalMs: 250 });
    await stopWorkers(workers);

    // Each due task ran once, wrote a child row pointing at its own id, and kept its cost.
    const { rows: events } = await pool.query<{ taskId: string; n: string }>(`SELECT "taskId", count(*) AS n FROM "TaskEvent" GROUP BY 1`);
    expect(events).toHaveLength(12 + 30 + 5);
    expect(events.every((event) => event.n === '1')).toBe(true);
    expect(await count(`state = 'SUCCEEDED' AND "costCents" BETWEEN 12.5 AND 14.5 AND "finishedAt" IS NOT NULL AND "startedAt" IS NOT NULL`)).toBe(12 + 30 + 5);

    const reconciled = await cli('reconcile', '--grace', '0', '--json');
    expect(JSON.parse(reconciled.stdout).total, reconciled.stdout).toBe(0);
    expect(reconciled.code).toBe(0);

    const back = await cli('rollback', '--yes', '--json');
    expect(back.code, back.stderr).toBe(0);
    expect(JSON.parse(back.stdout)).toMatchObject({ moved: 3 });
    // The team's claim, patched with the engine filter, takes exactly the rows that came back, still scheduled.
    const { rows: claimable } = await pool.query<{ id: string; later: boolean }>(
      `SELECT id, "scheduledFor" > now() AT TIME ZONE 'UTC' + interval '20 hours' AS later FROM "Task" WHERE state = 'WAITING' AND engine = 'LEGACY'`,
    );
    expect(claimable.map((row) => row.id).sort()).toEqual(['old_13', 'old_14', 'old_15']);
    expect(claimable.every((row) => row.later)).toBe(true);
  }, 180_000);
});
