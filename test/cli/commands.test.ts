import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import type { JobRegistry } from '../../src/jobs/registry.js';
import { startBoss } from '../../src/pgboss/boss.js';
import { BossWorker } from '../../src/pgboss/worker.js';
import { runCliInProcess } from '../helpers/cli.js';
import type { TestDatabase } from '../helpers/database.js';
import { quietLog, setPercent, type Producer } from '../helpers/engines.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { ownership } from '../helpers/invariants.js';
import { addLegacyJobs, countWhere, fixtureRegistry, jobRows } from '../helpers/jobs.js';
import { startCli } from '../helpers/process.js';
import { pollUntil } from '../helpers/wait.js';

// Commands and options no other test ran: enqueue, dlq list --id, worker --types, migrate's
// --limit/--concurrency/--older-than, --dry-run on a real backlog for migrate and rollback.

const fixture = useEngineFixture({});
let database: TestDatabase;
let pool: Pool;
let registry: JobRegistry;
let producer: Producer;
beforeEach(() => ({ database, pool, registry, producer } = fixture));

const cli = (...args: string[]) => runCliInProcess([...args, '--registry', fixtureRegistry, '--database-url', database.url]);
const cliProcess = (...args: string[]) => startCli([...args, '--registry', fixtureRegistry, '--database-url', database.url]);

/**
 * Everything a command could write, as one comparable value: every row of the job table,
 * pg-boss's jobs, the flags, the audit log and the quarantine.
 */
async function snapshot(): Promise<Record<string, unknown[]>> {
  const tables = {
    jobs: `SELECT * FROM "Job" ORDER BY id`,
    pgboss: `SELECT * FROM pgboss.job ORDER BY name, id`,
    flags: `SELECT * FROM "RolloutFlag" ORDER BY "jobType"`,
    events: `SELECT * FROM "RolloutEvent" ORDER BY id`,
    quarantine: `SELECT * FROM "MigrationQuarantine" ORDER BY "jobId"`,
  };
  const result: Record<string, unknown[]> = {};
  for (const [name, sql] of Object.entries(tables)) result[name] = (await pool.query(sql)).rows;
  return result;
}

describe('cutover enqueue', () => {
  it('adds jobs through the RolloutManager: routed by the flag, dual-written, with their priority', async () => {
    await setPercent(pool, 100);
    const sent = await cli('enqueue', 'test.record', '{"tag":"a"}', '--count', '3', '--priority', '7', '--json');
    expect(sent.code, sent.stderr).toBe(0);
    const report = JSON.parse(sent.stdout) as { enqueued: number; byEngine: Record<string, number>; jobs: { id: string; engine: string }[] };
    expect(report).toMatchObject({ enqueued: 3, byEngine: { LEGACY: 0, PGBOSS: 3 } });
    const ids = report.jobs.map((job) => job.id);
    expect(await countWhere(pool, `id = ANY($1::uuid[]) AND engine = 'PGBOSS' AND status = 'PENDING' AND priority = 7 AND payload = '{"tag":"a"}'::jsonb`, [ids])).toBe(3);
    const { rows } = await pool.query(`SELECT id, priority, data FROM pgboss.job WHERE name = 'test.record' ORDER BY id`);
    expect(rows).toEqual([...ids].sort().map((id) => ({ id, priority: 7000, data: { tag: 'a' } })));

    await setPercent(pool, 0);
    const text = await cli('enqueue', 'test.noop', '{}');
    expect(text.code, text.stderr).toBe(0);
    const [, id] = /^enqueued (\S+) on legacy \(/.exec(text.stdout) ?? [];
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ engine: 'LEGACY', status: 'PENDING', type: 'test.noop' });
  });

  it('routes every job of one --key to the same engine', async () => {
    await setPercent(pool, 50);
    const engines = new Set<string>();
    for (const key of ['customer-7', 'customer-7']) {
      const result = await cli('enqueue', 'test.noop', '{}', '--count', '10', '--key', key, '--json');
      expect(result.code, result.stderr).toBe(0);
      const { byEngine } = JSON.parse(result.stdout) as { byEngine: Record<string, number> };
      expect([byEngine.LEGACY, byEngine.PGBOSS].sort()).toEqual([0, 10]);
      engines.add(byEngine.LEGACY ? 'LEGACY' : 'PGBOSS');
    }
    expect(engines.size).toBe(1);
  });

  it('writes nothing for an invalid payload, a payload that is not JSON, or an unknown type (exit 2)', async () => {
    const invalid = await cli('enqueue', 'test.record', '{"tag":5}');
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(/invalid payload for test\.record/);
    const notJson = await cli('enqueue', 'test.record', '{tag');
    expect(notJson.code).toBe(2);
    const unknown = await cli('enqueue', 'test.nope', '{}');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown job type 'test\.nope'/);
    expect(await countWhere(pool, 'TRUE')).toBe(0);
  });
});

describe('cutover dlq list --id', () => {
  it('lists one dead-lettered job by its id or by its dead-letter copy id', async () => {
    await setPercent(pool, 100);
    const [first, second] = (await producer.manager.enqueueMany('test.nonretryable', [{ payload: {} }, { payload: {} }])).map((job) => job.id);
    const boss = await startBoss({ databaseUrl: database.url, log: quietLog, role: 'worker' });
    const worker = new BossWorker({ boss, pool, registry, log: quietLog, pollingIntervalSeconds: 0.5, types: ['test.nonretryable'] });
    await worker.start();
    try {
      await pollUntil('both dead-lettered', async () => (await pool.query(`SELECT 1 FROM pgboss.job WHERE name = 'test.nonretryable.dlq'`)).rowCount === 2);
    } finally {
      await worker.stop(5000);
    }
    const list = async (...args: string[]) => {
      const result = await cli('dlq', 'list', '--json', ...args);
      expect(result.code, result.stderr).toBe(0);
      return (JSON.parse(result.stdout) as { deadLetters: { jobId: string }[] }).deadLetters.map((letter) => letter.jobId);
    };
    expect((await list()).sort()).toEqual([first, second].sort());
    expect(await list('--id', first!)).toEqual([first]);
    const { rows } = await pool.query<{ id: string }>(`SELECT id FROM pgboss.job WHERE name = 'test.nonretryable.dlq' AND source_id = $1`, [second]);
    expect(await list('--id', rows[0]!.id)).toEqual([second]);
    expect(await list('--id', '00000000-0000-4000-8000-000000000000')).toEqual([]);
    expect(await list('--type', 'test.noop', '--id', first!)).toEqual([]);

    const text = await cli('dlq', 'list', '--id', first!);
    expect(text.stdout).toContain(first);
    expect(text.stdout).not.toContain(second);
    const bad = await cli('dlq', 'list', '--id', 'not-a-uuid');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--id must be a UUID, got 'not-a-uuid'/);
  });
});

describe('cutover worker --types', () => {
  it('a legacy runner takes only the types it is given, even when others come first in the queue', async () => {
    // The other type is older and of higher priority: a runner ignoring --types takes it first.
    await addLegacyJobs(pool, 'test.record', [{ tag: 'a' }, { tag: 'b' }, { tag: 'c' }], { priority: 10 });
    const noops = await addLegacyJobs(pool, 'test.noop', [{}, {}, {}]);
    const worker = cliProcess('worker', '--engine', 'legacy', '--types', 'test.noop', '--poll-ms', '20', '--json');
    await pollUntil('the noop jobs', async () => (await countWhere(pool, `id = ANY($1::uuid[]) AND status = 'COMPLETED'`, [noops])) === 3);
    worker.kill('SIGTERM');
    expect((await worker.exited).code, worker.stderr()).toBe(0);
    expect(JSON.parse(worker.stdout())).toMatchObject({ engine: 'legacy', completed: 3, failed: 0 });
    expect(await countWhere(pool, `type = 'test.record' AND status = 'PENDING' AND attempts = 0 AND "workerId" IS NULL`)).toBe(3);
  });

  it('a pg-boss worker works only the queues it is given', async () => {
    await setPercent(pool, 100);
    const records = (await producer.manager.enqueueMany('test.record', [{ payload: { tag: 'a' } }, { payload: { tag: 'b' } }])).map((job) => job.id);
    const noops = (await producer.manager.enqueueMany('test.noop', [{ payload: {} }, { payload: {} }])).map((job) => job.id);
    const worker = cliProcess('worker', '--engine', 'pgboss', '--types', 'test.noop', '--json');
    await pollUntil('the noop jobs', async () => (await countWhere(pool, `id = ANY($1::uuid[]) AND status = 'COMPLETED'`, [noops])) === 2);
    worker.kill('SIGTERM');
    expect((await worker.exited).code, worker.stderr()).toBe(0);
    expect(JSON.parse(worker.stdout())).toMatchObject({ engine: 'pgboss', completed: 2 });
    expect(await countWhere(pool, `id = ANY($1::uuid[]) AND status = 'PENDING' AND attempts = 0`, [records])).toBe(2);
    const { rows } = await pool.query(`SELECT DISTINCT state FROM pgboss.job WHERE name = 'test.record'`);
    expect(rows).toEqual([{ state: 'created' }]);
  });

  it('refuses an unknown type with exit 2', async () => {
    for (const engine of ['legacy', 'pgboss']) {
      const result = await cli('worker', '--engine', engine, '--types', 'test.noop,test.nope');
      expect(result.code, engine).toBe(2);
      expect(result.stderr).toMatch(/unknown job type 'test\.nope'/);
    }
  });
});

describe('cutover migrate --older-than, --limit, --concurrency', () => {
  it('moves only what its options select, and together they move the whole backlog once', async () => {
    const old = await addLegacyJobs(pool, 'test.noop', Array.from({ length: 10 }, () => ({})));
    await pool.query(`UPDATE "Job" SET "createdAt" = (now() AT TIME ZONE 'UTC') - interval '2 hours' WHERE id = ANY($1::uuid[])`, [old]);
    const urgent = await addLegacyJobs(pool, 'test.record', Array.from({ length: 7 }, (_, i) => ({ tag: `u${i}` })), { priority: 5 });
    const rest = await addLegacyJobs(pool, 'test.record', Array.from({ length: 13 }, (_, i) => ({ tag: `r${i}` })));
    const moved = (ids: string[]) => countWhere(pool, `id = ANY($1::uuid[]) AND engine = 'PGBOSS' AND "routeReason" = 'migrated'`, [ids]);

    const dry = await cli('migrate', '--older-than', '1h', '--dry-run', '--json');
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, moved: 10 });
    expect(await countWhere(pool, `engine = 'PGBOSS'`)).toBe(0);

    const older = await cli('migrate', '--older-than', '1h', '--json');
    expect(older.code, older.stderr).toBe(0);
    expect(JSON.parse(older.stdout)).toMatchObject({ moved: 10, byType: { 'test.noop': 10 } });
    expect(await moved(old)).toBe(10);
    expect(await countWhere(pool, `engine = 'PGBOSS'`)).toBe(10);

    // Highest priority first, at most 7, in batches of 3.
    const limited = await cli('migrate', '--limit', '7', '--batch', '3', '--json');
    expect(limited.code, limited.stderr).toBe(0);
    expect(JSON.parse(limited.stdout)).toMatchObject({ moved: 7, skipped: 13, batches: 3 });
    expect(await moved(urgent)).toBe(7);
    expect(await moved(rest)).toBe(0);

    const concurrent = await cli('migrate', '--concurrency', '4', '--batch', '2', '--json');
    expect(concurrent.code, concurrent.stderr).toBe(0);
    expect(JSON.parse(concurrent.stdout)).toMatchObject({ moved: 13, skipped: 0, batches: 7 });
    expect(await ownership(pool)).toEqual({ rows: 30, pgbossRows: 30, pgbossJobs: 30, lost: 0, inBoth: 0, orphans: 0 });
    expect(JSON.parse((await cli('migrate', '--json')).stdout).moved).toBe(0);
  });
});

describe('--dry-run on a real backlog writes nothing', () => {
  it('migrate --dry-run reports what would move and what would be quarantined', async () => {
    await addLegacyJobs(pool, 'test.record', Array.from({ length: 20 }, (_, i) => ({ tag: `t${i}` })));
    await addLegacyJobs(pool, 'test.noop', Array.from({ length: 5 }, () => ({})));
    await addLegacyJobs(pool, 'test.who-knows', [{}]);
    await addLegacyJobs(pool, 'test.record', [{ tag: 42 }]);
    const before = await snapshot();

    const json = await cli('migrate', '--dry-run', '--json');
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ dryRun: true, moved: 25, quarantined: 2, byType: { 'test.record': 20, 'test.noop': 5 } });
    const text = await cli('migrate', '--dry-run');
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^would move 25 job\(s\) to pg-boss/);
    expect(await snapshot()).toEqual(before);
  });

  it('rollback --dry-run reports the unstarted and running jobs and sets no kill switch', async () => {
    await setPercent(pool, 100);
    await producer.manager.enqueueMany('test.noop', Array.from({ length: 10 }, () => ({ payload: {} })));
    // One job failed once and waits in retry; one is running.
    const [retrying] = await producer.boss.fetch('test.noop');
    await producer.boss.fail('test.noop', retrying!.id, { message: 'once' });
    const [running] = await producer.boss.fetch('test.noop');
    await pool.query(`UPDATE "Job" SET status = 'RUNNING', attempts = 1 WHERE id = $1`, [running!.id]);
    const before = await snapshot();

    const json = await cli('rollback', '--dry-run', '--json');
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ dryRun: true, moved: 9, byType: { 'test.noop': 9 }, stillActive: [{ id: running!.id, type: 'test.noop' }] });
    const text = await cli('rollback', '--dry-run');
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^would move 9 unstarted job\(s\) back to legacy/);
    expect(await snapshot()).toEqual(before);
  });
});

describe('rollback --drain that times out', () => {
  /** A pg-boss job that runs for a minute, on a worker process of its own. */
  async function longRunningJob() {
    await setPercent(pool, 100);
    const { id } = await producer.manager.enqueue('test.sleep', { ms: 60_000 });
    const worker = cliProcess('worker', '--engine', 'pgboss', '--types', 'test.sleep', '--shutdown-timeout', '0');
    await pollUntil('the job to run', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'RUNNING');
    return { id, worker };
  }

  it('exits 1 and names what still runs', async () => {
    const { id, worker } = await longRunningJob();
    await producer.manager.enqueueMany('test.noop', [{ payload: {} }, { payload: {} }]);
    const result = await cli('rollback', '--drain', '--timeout', '1', '--yes');
    expect(result.code, result.stderr).toBe(1);
    expect(result.stderr).toMatch(/1 pg-boss job\(s\) still active after 1s/);
    expect(result.stdout).toMatch(/moved 2 unstarted job\(s\) back to legacy/);
    expect(result.stdout).toMatch(/1 job\(s\) still running on pg-boss after the drain timeout/);
    // The running job stays with pg-boss; the waiting ones went back.
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ engine: 'PGBOSS', status: 'RUNNING' });
    expect(await countWhere(pool, `type = 'test.noop' AND engine = 'LEGACY' AND "routeReason" = 'rolledback'`)).toBe(2);
    worker.kill('SIGKILL');
    expect((await worker.exited).signal).toBe('SIGKILL');
  });

  it('exits 1 with --json too, the summary saying it did not drain', async () => {
    const { id, worker } = await longRunningJob();
    const result = await cli('rollback', '--drain', '--timeout', '1', '--yes', '--json');
    expect(JSON.parse(result.stdout)).toMatchObject({ drained: false, stillActive: [{ id, type: 'test.sleep' }] });
    worker.kill('SIGKILL');
    await worker.exited;
    // The exit code says whether the check passed, whatever the output format (README: exit codes).
    expect(result.code, result.stderr).toBe(1);
  });
});
