// Archive and reconcile agree on what an archived job is: pg-boss keeps a finished job for days
// after `cutover archive` may have moved its tracking row, and such a job is no orphan; `--fix`
// never writes a second row for it, not even when the archive moves the row while the fix
// waits; and the archive gets past rows it already holds.
import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import type { JobRegistry } from '../../src/jobs/registry.js';
import { archive } from '../../src/moves/archive.js';
import { reconcile } from '../../src/reconcile/reconcile.js';
import { GENERIC_TABLE } from '../../src/table/table.js';
import { legacyJob } from '../factories/legacy.js';
import { pgbossJob } from '../factories/pgboss.js';
import { quietLog, type Producer } from '../helpers/engines.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { countWhere } from '../helpers/jobs.js';
import { pollUntil } from '../helpers/wait.js';

const fixture = useEngineFixture({ percent: 100 });
let pool: Pool;
let producer: Producer;
let registry: JobRegistry;
beforeEach(() => ({ pool, producer, registry } = fixture));

const QUEUE = 'test.noop';

/** A job pg-boss ran and keeps, with its tracking row (same id) finished as the worker leaves it. */
async function finishedTrackedJob(): Promise<string> {
  const { id } = await pgbossJob({ boss: producer.boss, pool }, { queue: QUEUE, state: 'completed', tracked: true });
  await pool.query(`UPDATE "Job" SET status = 'COMPLETED', attempts = 1, "startedAt" = now() AT TIME ZONE 'UTC', "completedAt" = now() AT TIME ZONE 'UTC' WHERE id = $1`, [id]);
  return id;
}

/** The tracking row `reconcile --fix` used to re-create for an archived job: same id and pg-boss job, finished. */
async function recreatedRow(id: string): Promise<void> {
  await legacyJob(pool, { type: QUEUE, id, engine: 'PGBOSS', status: 'COMPLETED', routeReason: 'adopted' });
}

const archiveAll = () => archive({ pool, table: GENERIC_TABLE, log: quietLog, actor: 'test', types: [QUEUE], olderThanSeconds: 0 });
const reconcileNow = (fix = false) => reconcile({ pool, registry, log: quietLog, actor: 'test', boss: producer.boss, types: [QUEUE], graceSeconds: 0, fix });
const inArchive = async (id: string) => Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM "Job_cutover_archive" WHERE id = $1`, [id])).rows[0]!.n);
const inTable = (id: string) => countWhere(pool, 'id = $1', [id]);

describe('reconcile after archive', () => {
  it('counts a job pg-boss keeps after its row was archived as archived, not as an orphan', async () => {
    const ids = [await finishedTrackedJob(), await finishedTrackedJob()];
    const orphan = await pgbossJob({ boss: producer.boss, pool }, { queue: QUEUE, state: 'completed' });
    expect((await archiveAll()).moved).toBe(2);

    const report = await reconcileNow();
    expect(report.archived).toBe(2);
    expect(report.findings.orphan.count).toBe(1);
    expect(report.findings.orphan.sample.map((finding) => finding.id)).toEqual([orphan.id]);
    expect(report.total).toBe(1);
    for (const id of ids) expect(await inArchive(id)).toBe(1);
  });

  it('--fix adopts no archived job, and the next archive has nothing to trip on', async () => {
    const id = await finishedTrackedJob();
    expect((await archiveAll()).moved).toBe(1);

    const fixed = await reconcileNow(true);
    expect(fixed.fixed).toMatchObject({ orphan: 0 });
    expect(fixed).toMatchObject({ total: 0, archived: 1 });
    expect(await inTable(id)).toBe(0);

    expect(await archiveAll()).toMatchObject({ moved: 0, duplicates: 0, skipped: 0, complete: true });
    expect(await inArchive(id)).toBe(1);
  });

  it('--fix writes no row for a job the archive moved while the fix waited on it', async () => {
    // A job with no row anywhere: an orphan when the fix reads its page of findings.
    const job = await pgbossJob({ boss: producer.boss, pool }, { queue: QUEUE, state: 'completed' });
    const holder = await pool.connect();
    let fix: ReturnType<typeof reconcileNow> | undefined;
    try {
      // Hold the job, so the fix has found the orphan and waits, under its lock, to adopt it.
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM pgboss.job WHERE name = $1 AND id = $2 FOR UPDATE`, [QUEUE, job.id]);
      fix = reconcileNow(true);
      await pollUntil('the fix to wait on the held job', async () => {
        const { rows } = await pool.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%' AND pid <> pg_backend_pid()`);
        return rows.length > 0;
      });
      // Meanwhile the job gets its row (another fix adopted it) and the archive moves that row.
      await recreatedRow(job.id);
      expect((await archiveAll()).moved).toBe(1);
      await holder.query('COMMIT');
    } finally {
      holder.release();
    }
    const report = await fix;
    expect(report?.fixed).toMatchObject({ orphan: 0 });
    expect(report).toMatchObject({ total: 0, archived: 1 });
    expect(await inTable(job.id)).toBe(0);
    expect(await inArchive(job.id)).toBe(1);
  });
});

describe('archive', () => {
  it('gets past rows whose ids the archive holds: a re-created copy of an archived job is dropped, another row is left and counted', async () => {
    const id = await finishedTrackedJob();
    expect((await archiveAll()).moved).toBe(1);
    // What `reconcile --fix` used to do: re-create the row of the archived job.
    await recreatedRow(id);
    // A row whose id the archive holds for another row (put back by hand, say): not the same job.
    const other = await legacyJob(pool, { type: QUEUE, status: 'COMPLETED' });
    await pool.query(`INSERT INTO "Job_cutover_archive" SELECT * FROM "Job" WHERE id = $1`, [other]);
    await pool.query(`UPDATE "Job_cutover_archive" SET payload = '{"kept":"by hand"}' WHERE id = $1`, [other]);
    const fresh = await finishedTrackedJob();

    expect(await archiveAll()).toMatchObject({ moved: 1, duplicates: 1, skipped: 1, complete: true });
    expect(await inTable(id)).toBe(0);
    expect(await inArchive(id)).toBe(1);
    expect(await inTable(other)).toBe(1);
    expect(await inTable(fresh)).toBe(0);
    expect(await inArchive(fresh)).toBe(1);
    // A second run goes past the row left in place again, and fails on nothing.
    expect(await archiveAll()).toMatchObject({ moved: 0, duplicates: 0, skipped: 1, complete: true });
  });
});
