import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import type { JobRegistry } from '../../src/jobs/registry.js';
import { LegacyRunner, type LegacyRunnerOptions, type RunnerStats } from '../../src/legacy/runner.js';
import { createLogger } from '../../src/support/log.js';
import { repoRoot } from '../helpers/cli.js';
import type { TestDatabase } from '../helpers/database.js';
import { useDatabaseFixture } from '../helpers/fixture.js';
import { addLegacyJobs, countWhere, jobRows } from '../helpers/jobs.js';
import { pollUntil } from '../helpers/wait.js';

// DESIGN §12 "A success is never run again": a job that succeeded but whose result the
// database refuses is recorded COMPLETED with the reason, never left for stale recovery to rerun.

const resultRegistry = join(repoRoot, 'test', 'fixtures', 'result-registry.mjs');
const log = createLogger({ level: 'silent' });
const NOT_STORED = 'succeeded, but its result could not be stored: ';
/** Short, so that stale recovery would take a row left RUNNING within the test. */
const staleAfterMs = 1000;

const fixture = useDatabaseFixture(resultRegistry);
let database: TestDatabase;
let pool: Pool;
let registry: JobRegistry;
beforeEach(() => ({ database, pool, registry } = fixture));

function runnerOptions(options: Partial<LegacyRunnerOptions> = {}): LegacyRunnerOptions {
  return { pool, databaseUrl: database.url, registry, log, pollMs: 20, heartbeatMs: 200, staleAfterMs, shutdownTimeoutMs: 2000, ...options };
}

/** A runner in this process, with its own stale-recovery loop; `stop` waits for its shutdown. */
function startRunner(): { runner: LegacyRunner; stop: () => Promise<RunnerStats> } {
  const controller = new AbortController();
  const runner = new LegacyRunner(runnerOptions());
  const done = runner.run(controller.signal);
  return {
    runner,
    stop: () => {
      controller.abort();
      return done;
    },
  };
}

async function executions(jobId?: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM "DemoDelivery" WHERE $1::text IS NULL OR "jobId" = $1`, [jobId ?? null]);
  return Number(rows[0]?.n ?? 0);
}

/** Every row of the legacy table is done: nothing PENDING or RUNNING (retry rows included). */
const settled = async () => (await countWhere(pool, `status IN ('PENDING', 'RUNNING')`)) === 0;

/**
 * Proves a stale-recovery pass ran after the stale time had passed for everything settled so
 * far: a dead worker's row, heartbeating now, is polled until another runner's pass recovers it.
 * Returns how many rows that pass recovered.
 */
async function recoveryPassPastStaleTime(): Promise<number> {
  await pool.query(
    `INSERT INTO "Job" (id, type, payload, status, attempts, "maxAttempts", engine, "workerId", "heartbeatAt", "startedAt")
     VALUES (gen_random_uuid(), 'test.tagged', '{"tag":"sentinel"}', 'RUNNING', 1, 1, 'LEGACY', 'a-dead-worker', now(), now())`,
  );
  const observer = new LegacyRunner(runnerOptions());
  return pollUntil('a recovery pass to take the dead worker’s row', async () => (await observer.recoverStale()) || undefined, { intervalMs: 100 });
}

describe('legacy runner: a success whose result the database refuses', () => {
  it('stores a BigInt result as its decimal string, drops a cycle, notes both, and runs the job once', async () => {
    const [id] = await addLegacyJobs(pool, 'test.bigint-result', [{}], { maxAttempts: 3 });
    const { stop } = startRunner();
    await pollUntil('the job to settle', settled);
    await stop();
    const [row] = await jobRows(pool, 'id = $1', [id]);
    expect(row).toMatchObject({ status: 'COMPLETED', attempts: 1, result: { count: '12345678901234567890' } });
    expect(row?.logs).toContain('result stored as far as it could be: $.count: a BigInt, stored as a decimal string');
    expect(row?.logs).toContain('$.self: a circular reference, dropped');
    expect(await executions(id)).toBe(1);
    expect(await countWhere(pool, `"originalJobId" = $1`, [id!])).toBe(0);
  });

  it('records a NUL in the result as COMPLETED without it, with the reason, and never runs the job again', async () => {
    const [id] = await addLegacyJobs(pool, 'test.nul-result', [{}], { maxAttempts: 3 });
    const { stop } = startRunner();
    await pollUntil('the job to settle', settled);
    const stats = await stop();
    expect(await recoveryPassPastStaleTime()).toBe(1); // the dead worker's row, nothing else

    const rows = await jobRows(pool, `type = 'test.nul-result'`);
    expect(rows.map((r) => [r.id, r.status, r.attempts, r.result])).toEqual([[id, 'COMPLETED', 1, null]]);
    expect(rows[0]?.error).toMatch(new RegExp(`^${NOT_STORED}\\S`));
    expect(rows[0]?.error).toMatch(/Unicode escape/);
    expect(await executions(id)).toBe(1);
    expect(stats).toMatchObject({ completed: 1, failed: 0, retried: 0, recovered: 0 });
  });

  it('keeps the result of a job whose log line holds a NUL, storing the log without it', async () => {
    const [id] = await addLegacyJobs(pool, 'test.nul-log', [{}], { maxAttempts: 3 });
    const { stop } = startRunner();
    await pollUntil('the job to settle', settled);
    await stop();
    expect(await recoveryPassPastStaleTime()).toBe(1);

    const rows = await jobRows(pool, `type = 'test.nul-log'`);
    expect(rows.map((r) => [r.id, r.status, r.attempts, r.result, r.error])).toEqual([[id, 'COMPLETED', 1, { logged: true }, null]]);
    expect(rows[0]?.logs).toContain('beforeafter');
    expect(await executions(id)).toBe(1);
  });

  it('records a result a check constraint refuses as COMPLETED without it, with the constraint named', async () => {
    await pool.query(`ALTER TABLE "Job" ADD CONSTRAINT no_tagged_results CHECK (result IS NULL OR NOT result ? 'tag')`);
    const [id] = await addLegacyJobs(pool, 'test.tagged', [{ tag: 'refused' }], { maxAttempts: 3 });
    const { stop } = startRunner();
    await pollUntil('the job to settle', settled);
    await stop();
    expect(await recoveryPassPastStaleTime()).toBe(1);

    const rows = await jobRows(pool, `payload->>'tag' = 'refused'`);
    expect(rows.map((r) => [r.id, r.status, r.attempts, r.result])).toEqual([[id, 'COMPLETED', 1, null]]);
    expect(rows[0]?.error).toMatch(new RegExp(`^${NOT_STORED}.*no_tagged_results`));
    expect(await executions(id)).toBe(1);
  });

  // The completion cannot be written at all for a while: a database restarting (not a data
  // error, so nothing to store less of), or a constraint that refuses even the result-less
  // fallback. The runner keeps the row's heartbeat and retries; once the database takes it,
  // the job is COMPLETED with its result, having run once.
  it.each([
    {
      refusal: 'the database is starting up (57P03)',
      refuse: `CREATE FUNCTION refuse_completion() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
                 IF NEW.status = 'COMPLETED' THEN RAISE EXCEPTION 'the database system is starting up' USING ERRCODE = '57P03'; END IF;
                 RETURN NEW; END $$;
               CREATE TRIGGER refuse_completion BEFORE UPDATE ON "Job" FOR EACH ROW EXECUTE FUNCTION refuse_completion()`,
      lift: `DROP TRIGGER refuse_completion ON "Job"`,
    },
    {
      refusal: 'a check constraint refuses the completion itself',
      refuse: `ALTER TABLE "Job" ADD CONSTRAINT no_completion CHECK (status <> 'COMPLETED')`,
      lift: `ALTER TABLE "Job" DROP CONSTRAINT no_completion`,
    },
  ])('retries the completion with backoff and keeps the heartbeat while $refusal, then completes it once', async ({ refuse, lift }) => {
    await pool.query(refuse);
    const [id] = await addLegacyJobs(pool, 'test.tagged', [{ tag: 'delayed' }], { maxAttempts: 3 });
    const { runner, stop } = startRunner();
    try {
      // Ran, then kept alive by its heartbeat for well past the stale time (or, on a runner
      // that gave up, left RUNNING without a heartbeat and recovered: no longer RUNNING).
      const row = await pollUntil('the heartbeat to outlive the stale time, or the row to leave RUNNING', async () => {
        const { rows } = await pool.query<{ status: string; workerId: string | null; ranAt: Date | null; beyond: boolean | null }>(
          `SELECT status, "workerId", d.at AS "ranAt", "heartbeatAt" > d.at + make_interval(secs => $2) AS beyond
             FROM "Job" LEFT JOIN (SELECT min(at) AS at FROM "DemoDelivery" WHERE "jobId" = $1::text) d ON TRUE
            WHERE id = $1::uuid`,
          [id, (3 * staleAfterMs) / 1000],
        );
        const current = rows[0];
        return current?.ranAt && (current.status !== 'RUNNING' || current.beyond) ? { status: current.status, workerId: current.workerId, beyond: current.beyond } : undefined;
      });
      expect(row).toEqual({ status: 'RUNNING', workerId: runner.workerId, beyond: true });
      // Another runner's recovery pass does not take it either.
      expect(await new LegacyRunner(runnerOptions()).recoverStale()).toBe(0);

      await pool.query(lift);
      await pollUntil('the completion to be recorded', settled);
    } finally {
      await stop();
    }
    const rows = await jobRows(pool);
    expect(rows.map((r) => [r.id, r.status, r.attempts, r.result, r.error])).toEqual([[id, 'COMPLETED', 1, { tag: 'delayed' }, null]]);
    expect(await executions()).toBe(1);
  });
});
