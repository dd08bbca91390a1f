// The two ends of a rollout. Preflight before the first ramp (each check made to fail
// for real), the drain report, finalize and its pinned routing, archive killed and resumed.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startHeartbeat } from '../../src/state/heartbeat.js';
import type { Pool } from '../../src/db/pool.js';
import { JobIdTakenError } from '../../src/support/errors.js';
import type { TestDatabase } from '../helpers/database.js';
import { quietLog, setPercent, type Producer } from '../helpers/engines.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { addLegacyJobs, countWhere, fixtureRegistry } from '../helpers/jobs.js';
import { runCliInProcess } from '../helpers/cli.js';
import { killStragglers, startCli } from '../helpers/process.js';
import { pollUntil } from '../helpers/wait.js';

const fixture = useEngineFixture({});
let database: TestDatabase;
let pool: Pool;
let producer: Producer;
beforeEach(() => ({ database, pool, producer } = fixture));
afterEach(killStragglers);

const cli = (...args: string[]) => runCliInProcess([...args, '--registry', fixtureRegistry, '--database-url', database.url]);

interface Check {
  check: string;
  type: string | null;
  status: 'pass' | 'warn' | 'fail';
  value: string;
  advice: string;
}

async function preflight(...args: string[]): Promise<{ code: number | null; checks: Check[]; status: string }> {
  const result = await cli('preflight', '--json', ...args);
  expect(result.stdout, result.stderr).not.toBe('');
  const report = JSON.parse(result.stdout) as { checks: Check[]; status: string };
  return { code: result.code, ...report };
}

const find = (checks: readonly Check[], check: string, type: string | null = null) => checks.find((c) => c.check === check && c.type === type);

/** Heartbeats as a cutover worker writes them, for the types and engine given. */
async function liveWorker(engine: 'LEGACY' | 'PGBOSS', types: string[], version?: string): Promise<() => Promise<void>> {
  return startHeartbeat(pool, { workerId: randomUUID(), engine, types }, { log: quietLog, ...(version ? { version } : {}) });
}

describe('preflight', () => {
  it('passes a ready database, with live workers on both engines for the type', async () => {
    const stops = [await liveWorker('PGBOSS', ['test.noop']), await liveWorker('LEGACY', ['test.noop'])];
    const report = await preflight('--type', 'test.noop');
    expect(report.checks.filter((c) => c.status !== 'pass'), JSON.stringify(report.checks)).toEqual([]);
    expect(report.code).toBe(0);
    expect(find(report.checks, 'pg-boss worker', 'test.noop')?.value).toMatch(/^1 live/);
    for (const stop of stops) await stop();
  });

  it('fails a migration not applied, and a pg-boss schema older than this pg-boss runs, saying what would change', async () => {
    await pool.query(`DELETE FROM "_prisma_migrations" WHERE migration_name = '0006_job_archive'`);
    await pool.query(`UPDATE pgboss.version SET version = version - 1`);
    const report = await preflight('--type', 'test.noop');
    expect(report.code).toBe(1);
    expect(find(report.checks, 'migrations')).toMatchObject({ status: 'fail', value: '0006_job_archive pending' });
    const schema = find(report.checks, 'pg-boss schema')!;
    expect(schema.status).toBe('fail');
    expect(schema.value).toMatch(/^version (\d+), this cutover's pg-boss runs (\d+)$/);
    expect(schema.advice).toMatch(/would migrate the shared schema 'pgboss' from \d+ to \d+/);
    await pool.query(`UPDATE pgboss.version SET version = version + 1`);
  });

  it('fails a legacy type with no job definition unless aliased to one', async () => {
    await addLegacyJobs(pool, 'noop.v1', [{}, {}]);
    const report = await preflight();
    expect(find(report.checks, 'registered', 'noop.v1')).toMatchObject({ status: 'fail', value: '2 row(s) in the last 30 days, no job definition' });
    const aliased = await preflight('--alias', 'noop.v1=test.noop');
    expect(find(aliased.checks, 'registered', 'noop.v1')).toMatchObject({ status: 'pass', value: '2 row(s) in the last 30 days, as test.noop' });
  });

  it('fails a type whose queue or dead-letter queue was never created', async () => {
    await producer.boss.deleteQueue('test.noop');
    const report = await preflight('--type', 'test.noop');
    expect(find(report.checks, 'queues', 'test.noop')).toMatchObject({ status: 'fail', value: 'missing: test.noop' });
  });

  it('fails legacy run times past the timeout, and payloads over the limit', async () => {
    // test.noop's timeout is the default; its legacy runs took twice as long.
    const ids = await addLegacyJobs(pool, 'test.noop', Array.from({ length: 5 }, () => ({})));
    await pool.query(
      `UPDATE "Job" SET status = 'COMPLETED', "startedAt" = now() - interval '2 hours', "completedAt" = now() - interval '2 hours' + make_interval(secs => $2::float8)
        WHERE id = ANY($1::uuid[])`,
      [ids, 700],
    );
    await pool.query(`INSERT INTO "Job" (id, type, payload) VALUES (gen_random_uuid(), 'test.noop', jsonb_build_object('blob', repeat('x', 1100000)))`);
    const report = await preflight('--type', 'test.noop');
    const runTime = find(report.checks, 'run time', 'test.noop')!;
    expect(runTime.status).toBe('fail');
    expect(runTime.value).toMatch(/^p99 11 minutes 40 seconds, max 11 minutes 40 seconds over 5 run\(s\); timeout /);
    const payload = find(report.checks, 'payload size', 'test.noop')!;
    expect(payload.status).toBe('fail');
    expect(payload.value).toMatch(/max 1\.05 MiB .*; limit 1 MiB/);
  });

  it('fails a type with traffic on pg-boss and no live pg-boss worker, and warns of mixed worker versions', async () => {
    await setPercent(pool, 50);
    const before = await preflight('--type', 'test.noop');
    expect(find(before.checks, 'pg-boss worker', 'test.noop')).toMatchObject({ status: 'fail', value: 'none live; 50% of new jobs go to pg-boss' });
    const stops = [await liveWorker('PGBOSS', ['test.noop'], '0.1.0'), await liveWorker('LEGACY', ['test.noop'], '0.2.0')];
    const after = await preflight('--type', 'test.noop');
    expect(find(after.checks, 'pg-boss worker', 'test.noop')?.status).toBe('pass');
    expect(find(after.checks, 'worker versions')).toMatchObject({ status: 'warn' });
    expect(find(after.checks, 'worker versions')?.value).toMatch(/^mixed: 0\.1\.0 on .*; 0\.2\.0 on /);
    for (const stop of stops) await stop();
  });

  it('plan start refuses on a failing preflight and creates no run', async () => {
    await producer.boss.deleteQueue('test.noop');
    const dir = await mkdtemp(join(tmpdir(), 'cutover-plan-'));
    const file = join(dir, 'p.yaml');
    await writeFile(file, 'name: p\njobType: test.noop\nsteps:\n  - setWeight: 10\n');
    const refused = await cli('plan', 'start', file);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/preflight fails \(queues test\.noop: missing: test\.noop\): fix it, or pass --skip-preflight; nothing changed/);
    expect((await pool.query(`SELECT 1 FROM "RolloutPlanRun"`)).rowCount).toBe(0);
    await rm(dir, { recursive: true, force: true });
  });
});

describe('RolloutManager and pg-boss dropping an id it already has', () => {
  it('is a failure that writes nothing, never a success or a fallback to legacy', async () => {
    await setPercent(pool, 100);
    const id = randomUUID();
    await producer.boss.insert('test.noop', [{ id, data: { earlier: true } }]);
    await expect(producer.manager.enqueue('test.noop', {}, { id })).rejects.toBeInstanceOf(JobIdTakenError);
    expect(await countWhere(pool, 'id = $1', [id])).toBe(0);
    expect(producer.manager.fallbackCount).toBe(0);
  });
});

describe('drain-report', () => {
  it('counts every category that keeps the legacy runner alive, and exits 0 only when none is left', async () => {
    const [waiting, old, scheduled, retrying, live, stale, quarantined] = await addLegacyJobs(pool, 'test.noop', Array.from({ length: 7 }, () => ({})));
    await pool.query(`UPDATE "Job" SET "createdAt" = now() - interval '2 days' WHERE id = $1`, [old]);
    await pool.query(`UPDATE "Job" SET "runAfter" = now() + interval '30 days' WHERE id = $1`, [scheduled]);
    await pool.query(`UPDATE "Job" SET attempts = 1, "runAfter" = now() + interval '1 minute' WHERE id = $1`, [retrying]);
    await pool.query(`UPDATE "Job" SET status = 'RUNNING', "heartbeatAt" = now() WHERE id = $1`, [live]);
    await pool.query(`UPDATE "Job" SET status = 'RUNNING', "heartbeatAt" = now() - interval '10 minutes' WHERE id = $1`, [stale]);
    await pool.query(`INSERT INTO "MigrationQuarantine" ("jobId", "jobType", reason) VALUES ($1, 'test.noop', 'unmappable')`, [quarantined]);
    // Final rows and pg-boss's rows do not keep the legacy runner alive.
    const [done] = await addLegacyJobs(pool, 'test.noop', [{}]);
    await pool.query(`UPDATE "Job" SET status = 'COMPLETED' WHERE id = $1`, [done]);
    await setPercent(pool, 100, 'test.record');
    await producer.manager.enqueue('test.record', { tag: 'x' });

    const report = await cli('drain-report', '--json');
    expect(report.code).toBe(1);
    const counts = JSON.parse(report.stdout) as { drained: boolean; types: Record<string, unknown>[] };
    expect(counts.drained).toBe(false);
    expect(counts.types).toHaveLength(1);
    expect(counts.types[0]).toMatchObject({
      type: 'test.noop',
      waiting: 2,
      waitingByAge: { underHour: 1, hourToDay: 0, overDay: 1 },
      scheduled: 1,
      retrying: 1,
      runningLive: 1,
      runningStale: 1,
      quarantined: 1,
    });
    expect(waiting).toBeDefined();
    const human = await cli('drain-report');
    expect(human.stdout).toMatch(/test\.noop\s+2\s+1\s+0\s+1\s+2 days/);
    expect(human.stdout).toContain('not drained');

    await pool.query(`UPDATE "Job" SET status = 'COMPLETED' WHERE type = 'test.noop'`);
    const drained = await cli('drain-report', '--type', 'test.noop');
    expect(drained.code, drained.stderr).toBe(0);
    expect(drained.stdout).toContain('drained: the legacy runner has nothing left to do');
  });
});

describe('finalize', () => {
  it('refuses below 100 % or with legacy rows left; then pins routing to pg-boss until --unfinalize', async () => {
    await setPercent(pool, 60, 'test.noop');
    const low = await cli('finalize', '--type', 'test.noop');
    expect(low.code).toBe(1);
    expect(low.stderr).toMatch(/test\.noop routes 60% to pg-boss \(its own flag\): finalize needs 100 %.*nothing changed/);

    await setPercent(pool, 100, 'test.noop');
    const [left] = await addLegacyJobs(pool, 'test.noop', [{}]);
    const undrained = await cli('finalize', '--type', 'test.noop');
    expect(undrained.code).toBe(1);
    expect(undrained.stderr).toMatch(/1 legacy row\(s\) of test\.noop are not final yet: see cutover drain-report --type test\.noop/);
    expect((await pool.query(`SELECT 1 FROM "RolloutFinal"`)).rowCount).toBe(0);

    await pool.query(`UPDATE "Job" SET status = 'COMPLETED' WHERE id = $1`, [left]);
    const done = await cli('finalize', '--type', 'test.noop', '--json');
    expect(done.code, done.stderr).toBe(0);
    expect(JSON.parse(done.stdout)).toEqual({ jobType: 'test.noop', tracking: true, changed: true });

    // Pinned: the * flag at 0 % no longer decides for it, and lowering it needs --unfinalize.
    await setPercent(pool, 0);
    await pollUntil('the flag cache to see the finalization', async () => (await producer.flags.get('test.noop')).typeFlag?.finalized);
    const routed = await producer.manager.enqueue('test.noop', {});
    expect(routed).toMatchObject({ engine: 'PGBOSS', reason: 'finalized' });
    const lowered = await cli('rollout', 'set', '50', '--type', 'test.noop');
    expect(lowered.code).toBe(2);
    expect(lowered.stderr).toMatch(/test\.noop is finalized .*needs --unfinalize; nothing changed/);
    const unfinalized = await cli('rollout', 'set', '50', '--type', 'test.noop', '--unfinalize');
    expect(unfinalized.code, unfinalized.stderr).toBe(0);
    expect((await pool.query(`SELECT 1 FROM "RolloutFinal"`)).rowCount).toBe(0);
    const actions = (await pool.query<{ action: string }>(`SELECT action FROM "RolloutEvent" ORDER BY id`)).rows.map((r) => r.action);
    expect(actions).toContain('rollout.finalize');
  });

  it('with --tracking off, new jobs are pg-boss\'s alone, and reconcile does not call them orphans', async () => {
    await setPercent(pool, 100, 'test.noop');
    expect((await cli('finalize', '--type', 'test.noop', '--tracking', 'off')).code).toBe(0);
    await pollUntil('the flag cache to see the finalization', async () => (await producer.flags.get('test.noop')).typeFlag?.finalized);
    const { id, pgbossJobId } = await producer.manager.enqueue('test.noop', {});
    expect(await countWhere(pool, 'id = $1', [id])).toBe(0);
    expect((await pool.query(`SELECT 1 FROM pgboss.job WHERE name = 'test.noop' AND id = $1`, [pgbossJobId])).rowCount).toBe(1);
    const reconciled = await cli('reconcile', '--grace', '0', '--type', 'test.noop', '--json');
    expect(JSON.parse(reconciled.stdout).findings.orphan.count, reconciled.stderr).toBe(0);
  });
});

describe('archive', () => {
  it('moves finished old rows in batches; killed mid-run it loses and doubles nothing, and a second run finishes', async () => {
    const total = 20_000;
    await pool.query(
      `INSERT INTO "Job" (id, type, payload, status, "createdAt", "updatedAt", "completedAt")
       SELECT gen_random_uuid(), 'test.noop', '{}', CASE WHEN i % 10 = 0 THEN 'FAILED' ELSE 'COMPLETED' END::"JobStatus",
              now() - interval '40 days', now() - interval '40 days', now() - interval '40 days'
         FROM generate_series(1, $1) AS i`,
      [total],
    );
    // Not archived: recent, still waiting, or another type.
    const [young] = await addLegacyJobs(pool, 'test.noop', [{}]);
    await pool.query(`UPDATE "Job" SET status = 'COMPLETED', "completedAt" = now() WHERE id = $1`, [young]);
    await addLegacyJobs(pool, 'test.noop', [{}]);
    const archived = async () => Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM "Job_cutover_archive"`)).rows[0]!.n);

    const first = startCli(['archive', '--type', 'test.noop', '--older-than', '30d', '--batch', '200', '--registry', fixtureRegistry, '--database-url', database.url]);
    await pollUntil('the first batches to move', async () => (await archived()) > 0, { intervalMs: 5 });
    first.kill('SIGKILL');
    await first.exited;
    // Its server session outlives the client by a moment, holding the rows of the batch it was
    // moving; a second run that starts at once would skip them as taken.
    await pollUntil('the killed run\'s session to end', async () =>
      Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle' AND query LIKE '%cutover_archive%'`)).rows[0]!.n) === 0,
    );
    // One snapshot of both tables: every old row is in exactly one of them, whatever the kill
    // interrupted (a statement in flight when the client died commits whole or not at all).
    const split = async () =>
      (
        await pool.query<{ archived: number; left: number }>(
          `SELECT (SELECT count(*) FROM "Job_cutover_archive")::int AS archived,
                  (SELECT count(*) FROM "Job" WHERE type = 'test.noop' AND "completedAt" < now() - interval '30 days')::int AS left`,
        )
      ).rows[0]!;
    const afterKill = await split();
    expect(afterKill.archived + afterKill.left).toBe(total);
    expect(afterKill.left).toBeGreaterThan(0);

    const second = await cli('archive', '--type', 'test.noop', '--older-than', '30d', '--json');
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ complete: true });
    expect(JSON.parse(second.stdout).moved).toBeGreaterThan(0);
    expect(await split()).toEqual({ archived: total, left: 0 });
    expect(await archived()).toBe(total);
    const { rows } = await pool.query<{ n: string }>(`SELECT count(DISTINCT id) AS n FROM "Job_cutover_archive"`);
    expect(Number(rows[0]!.n)).toBe(total);
    expect(await countWhere(pool, "type = 'test.noop'")).toBe(2);
    const actions = (await pool.query<{ action: string }>(`SELECT action FROM "RolloutEvent" WHERE action LIKE 'archive%' ORDER BY id`)).rows.map((r) => r.action);
    expect(actions).toEqual(['archive.start', 'archive.start', 'archive']);
  });
});
