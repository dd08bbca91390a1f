// cutover adopts a team's own legacy table (text cuid ids, domain columns, no type or
// payload) through the example adapter in examples/evaluation-table, end to end.
import { cp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../src/config/file.js';
import type { Pool } from '../../src/db/pool.js';
import { loadRegistry } from '../../src/jobs/registry.js';
import { pgbossIdFor } from '../../src/table/ids.js';
import { bindLegacyTable } from '../../src/table/table.js';
import { repoRoot, runCliInProcess } from '../helpers/cli.js';
import { createEmptyDatabase, type TestDatabase } from '../helpers/database.js';
import { setPercent, startProducer } from '../helpers/engines.js';
import { testPool } from '../helpers/jobs.js';
import { killStragglers, startCli } from '../helpers/process.js';
import { pollUntil } from '../helpers/wait.js';
import { pgbossJob } from '../factories/pgboss.js';

const example = join(repoRoot, 'examples', 'evaluation-table');
const TYPE = 'evaluation.process';

let database: TestDatabase;
let pool: Pool;
let project: string;

/** The CLI as the team runs it: in their project directory, which holds cutover.config.ts. */
const cli = (...args: string[]) => runCliInProcess([...args, '--database-url', database.url], { cwd: project });

/** Rows as the team's producers write them: plain INSERTs, cuid ids, no cutover columns. */
async function produce(count: number, status: 'PENDING' | 'RUNNING' | 'COMPLETED' | 'FAILED', prefix: string): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => `c${prefix}${i.toString().padStart(4, '0')}${randomBytes(4).toString('hex')}`);
  await pool.query(
    `INSERT INTO "Job" (id, status, "evaluationId", "agentEvalBatchId", attempts, "llmThinking", "costInCents", "startedAt", "completedAt", "updatedAt")
     SELECT id, $2::"JobStatus", 'ev-' || id, CASE WHEN n % 2 = 0 THEN 'batch-7' END,
            CASE WHEN $2 = 'PENDING' THEN 0 ELSE 1 END,
            CASE WHEN $2 = 'COMPLETED' THEN 'old thinking' END, CASE WHEN $2 = 'COMPLETED' THEN 3 END,
            CASE WHEN $2 <> 'PENDING' THEN now() END, CASE WHEN $2 IN ('COMPLETED', 'FAILED') THEN now() END, now()
       FROM unnest($1::text[]) WITH ORDINALITY AS t(id, n)`,
    [ids, status],
  );
  return ids;
}

const count = async (where: string, values: unknown[] = []) => Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM "Job" WHERE ${where}`, values)).rows[0]!.n);
const pgbossCount = async (where: string) => Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM pgboss.job WHERE name = '${TYPE}' AND ${where}`)).rows[0]!.n);

beforeAll(async () => {
  database = await createEmptyDatabase();
  pool = testPool(database.url);
  await pool.query(await readFile(join(example, 'schema.sql'), 'utf8'));
  // Inside the repository, so the config's `import 'cutover'` resolves to this package.
  project = join(repoRoot, '.test-tmp', `adopt-${randomBytes(4).toString('hex')}`);
  await mkdir(project, { recursive: true });
  await cp(example, project, { recursive: true });
});

afterEach(killStragglers);

afterAll(async () => {
  await pool?.end();
  await database?.drop();
  if (project) await rm(project, { recursive: true, force: true });
});

describe('adopting a real-shaped legacy table', () => {
  it('init, migrate, route at 50 %, move the backlog, run both engines, reconcile clean, roll back', async () => {
    const pending = await produce(30, 'PENDING', 'p');
    const running = await produce(2, 'RUNNING', 'r');
    await produce(5, 'COMPLETED', 'd');
    await produce(3, 'FAILED', 'f');

    // init writes one migration, and writing it again adds nothing.
    const init = await cli('init');
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
    expect(init.stdout).toMatch(/wrote .*_cutover_adopt\/migration\.sql/);
    expect((await cli('init')).stdout).toMatch(/already adopted/);
    const migrations = await readdir(join(project, 'prisma', 'migrations'));
    expect(migrations).toHaveLength(1);

    const applied = await cli('db', 'migrate');
    expect(applied.code).toBe(0);
    expect(applied.stdout).toContain(`applied ${migrations[0]}`);
    expect(applied.stdout).not.toContain('0001_legacy');
    expect((await cli('db', 'migrate')).stdout).toContain('nothing to apply');
    // The migration itself is idempotent on a table that already has everything.
    await pool.query(await readFile(join(project, 'prisma', 'migrations', migrations[0]!, 'migration.sql'), 'utf8'));
    expect(await count(`engine = 'LEGACY'`)).toBe(40);

    expect((await cli('rollout', 'set', '50', '--yes', '--reason', 'adopt test')).code).toBe(0);

    // Dual-write through the RolloutManager, the library way a producer would.
    const config = await loadConfigFile(undefined, project);
    const registry = await loadRegistry(config.registry);
    const table = await bindLegacyTable(pool, config.legacy!);
    const producer = await startProducer(database.url, pool, registry, { ttlMs: 200, table });
    try {
      const first = await producer.manager.enqueueMany(
        TYPE,
        Array.from({ length: 40 }, (_, i) => ({ payload: { evaluationId: `ev-new-${i}`, batchId: i % 2 ? 'batch-9' : null } })),
      );
      const toBoss = first.filter((job) => job.engine === 'PGBOSS');
      expect(toBoss.length).toBeGreaterThan(5);
      expect(toBoss.length).toBeLessThan(35);
      // Tracking rows carry the domain columns; text ids map to pg-boss ids with uuidv5.
      for (const job of first) expect(job.id).toMatch(/^c[0-9a-z]+$/);
      expect(await count(`"evaluationId" LIKE 'ev-new-%' AND ("agentEvalBatchId" IS NOT DISTINCT FROM CASE WHEN "evaluationId" ~ '[13579]$' THEN 'batch-9' END)`)).toBe(40);
      const { rows: mirrored } = await pool.query<{ id: string; pgbossJobId: string; data: unknown }>(
        `SELECT j.id, j."pgbossJobId", b.data FROM "Job" j JOIN pgboss.job b ON b.name = $1 AND b.id = j."pgbossJobId" WHERE j.engine = 'PGBOSS'`,
        [TYPE],
      );
      expect(mirrored).toHaveLength(toBoss.length);
      for (const row of mirrored) expect(row.pgbossJobId).toBe(pgbossIdFor(row.id));

      // The mapper moves the pending backlog, the producers' rows included.
      const moved = await cli('migrate', '--yes', '--json');
      expect(moved.code, moved.stderr).toBe(0);
      const summary = JSON.parse(moved.stdout) as { moved: number; quarantined: number };
      expect(summary).toMatchObject({ moved: pending.length + (40 - toBoss.length), quarantined: 0 });
      const { rows: migrated } = await pool.query<{ data: unknown; evaluationId: string; batch: string | null }>(
        `SELECT b.data, j."evaluationId", j."agentEvalBatchId" AS batch FROM "Job" j JOIN pgboss.job b ON b.name = $1 AND b.id = j."pgbossJobId"
          WHERE j."routeReason" = 'migrated'`,
        [TYPE],
      );
      expect(migrated).toHaveLength(summary.moved);
      for (const row of migrated) expect(row.data).toEqual({ evaluationId: row.evaluationId, batchId: row.batch });
      expect(await count(`status = 'PENDING' AND engine = 'LEGACY'`)).toBe(0);

      // New legacy-routed jobs for the legacy runner, then both engines run everything.
      const second = await producer.manager.enqueueMany(TYPE, Array.from({ length: 20 }, (_, i) => ({ payload: { evaluationId: `ev-late-${i}`, batchId: null } })));
      const lateLegacy = second.filter((job) => job.engine === 'LEGACY').length;
      expect(lateLegacy).toBeGreaterThan(0);
      const workers = [
        startCli(['worker', '--engine', 'legacy', '--poll-ms', '50', '--database-url', database.url], {}, { cwd: project }),
        startCli(['worker', '--engine', 'pgboss', '--database-url', database.url], {}, { cwd: project }),
      ];
      await pollUntil('every queued job finished', async () => (await count(`status IN ('PENDING', 'RUNNING') AND id <> ALL($1::text[])`, [running])) === 0, {
        timeoutMs: 90_000,
        intervalMs: 250,
      }).catch(async (error: Error) => {
        const left = (await pool.query(`SELECT engine, status, count(*) FROM "Job" GROUP BY 1, 2`)).rows;
        throw new Error(`${error.message}: ${JSON.stringify(left)}\n${workers.map((worker) => worker.stderr()).join('\n')}`);
      });
      for (const worker of workers) worker.kill('SIGTERM');
      const exits = await Promise.all(workers.map((worker) => worker.exited));
      expect(exits.map((exit) => exit.code), workers.map((w) => w.stderr()).join('\n')).toEqual([0, 0]);

      // Results went into the domain columns, on both engines.
      expect(await count(`engine = 'PGBOSS' AND status = 'COMPLETED' AND "llmThinking" LIKE 'evaluated ev-%' AND "costInCents" >= 10 AND logs LIKE '% on PGBOSS'`)).toBe(summary.moved + toBoss.length + (20 - lateLegacy));
      expect(await count(`engine = 'LEGACY' AND status = 'COMPLETED' AND "llmThinking" LIKE 'evaluated ev-late-%' AND logs LIKE '% on LEGACY'`)).toBe(lateLegacy);
      expect(await count(`"llmThinking" LIKE 'evaluated ev-c%' AND "agentEvalBatchId" = 'batch-7' AND "llmThinking" LIKE '%of batch batch-7'`)).toBeGreaterThan(0);

      // The team's runner finishes what it had started before the adoption.
      await pool.query(`UPDATE "Job" SET status = 'COMPLETED', "completedAt" = now(), "updatedAt" = now() WHERE id = ANY($1::text[])`, [running]);
      const reconciled = await cli('reconcile', '--grace', '0', '--json');
      const report = JSON.parse(reconciled.stdout) as { total: number; comparison: { type: string; pgboss: { jobs: number } }[] };
      expect(report.total, reconciled.stdout).toBe(0);
      expect(reconciled.code).toBe(0);
      expect(report.comparison.find((c) => c.type === TYPE)?.pgboss.jobs).toBe(summary.moved + toBoss.length + (20 - lateLegacy));

      // Rollback returns jobs pg-boss has not started to the table, for the team's own runner.
      await setPercent(pool, 100);
      const third = await producer.manager.enqueueMany(TYPE, Array.from({ length: 10 }, (_, i) => ({ payload: { evaluationId: `ev-back-${i}`, batchId: 'batch-3' }, key: `back-${i}` })));
      expect(third.every((job) => job.engine === 'PGBOSS')).toBe(true);
      const back = await cli('rollback', '--yes', '--json');
      expect(back.code, back.stderr).toBe(0);
      expect(JSON.parse(back.stdout)).toMatchObject({ moved: 10 });
      expect(await pgbossCount(`state IN ('created', 'retry')`)).toBe(0);
      // The team's runner claims as it always has (no cutover column but the engine filter).
      const { rows: claimed } = await pool.query<{ evaluationId: string; agentEvalBatchId: string }>(
        `UPDATE "Job" SET status = 'RUNNING', attempts = attempts + 1, "startedAt" = now(), "updatedAt" = now()
          WHERE id IN (SELECT id FROM "Job" WHERE status = 'PENDING' AND engine = 'LEGACY' ORDER BY "createdAt" FOR UPDATE SKIP LOCKED)
          RETURNING "evaluationId", "agentEvalBatchId"`,
      );
      expect(claimed.map((row) => row.evaluationId).sort()).toEqual(third.map((_, i) => `ev-back-${i}`).sort());
      expect(claimed.every((row) => row.agentEvalBatchId === 'batch-3')).toBe(true);
    } finally {
      await producer.close();
    }
  }, 180_000);

  it('reconcile --fix repairs through the adapter: adopts an orphan, copies a final state with its result, hands a lost job back', async () => {
    const config = await loadConfigFile(undefined, project);
    const registry = await loadRegistry(config.registry);
    const producer = await startProducer(database.url, pool, registry, { ttlMs: 200, table: await bindLegacyTable(pool, config.legacy!) });
    try {
      // Finished in pg-boss while its row still says RUNNING (its worker died before the commit);
      // made first, so that it is the job its queue hands out.
      const { id: finished } = await pgbossJob(
        { boss: producer.boss, pool },
        { queue: TYPE, data: { evaluationId: 'ev-drift', batchId: null }, state: 'completed', output: { llmThinking: 'finished while nobody watched', costInCents: 42 } },
      );
      // Sent around cutover: a pg-boss job with no row.
      const orphan = await producer.boss.send(TYPE, { evaluationId: 'ev-orphan', batchId: 'batch-5' });
      await pool.query(
        `INSERT INTO "Job" (id, status, "evaluationId", attempts, engine, "pgbossJobId", "updatedAt", "startedAt")
         VALUES ('ckdrift0001', 'RUNNING', 'ev-drift', 1, 'PGBOSS', $1, now(), now()),
                ('cklost00001', 'PENDING', 'ev-lost', 0, 'PGBOSS', gen_random_uuid(), now(), NULL)`,
        [finished],
      );
      const result = await cli('reconcile', '--fix', '--grace', '0', '--json');
      const report = JSON.parse(result.stdout) as { total: number; fixed: Record<string, number> };
      expect(report.fixed, result.stdout).toEqual({ lost: 1, orphan: 1, drift: 1 });
      expect(report.total, result.stdout).toBe(0);
      expect(result.code).toBe(0);
      const { rows: adopted } = await pool.query(`SELECT id, status, "evaluationId", "agentEvalBatchId", "routeReason" FROM "Job" WHERE "pgbossJobId" = $1`, [orphan]);
      expect(adopted).toEqual([{ id: expect.stringMatching(/^c[0-9a-z]+$/), status: 'PENDING', evaluationId: 'ev-orphan', agentEvalBatchId: 'batch-5', routeReason: 'adopted' }]);
      const { rows: drifted } = await pool.query(`SELECT status, "llmThinking", "costInCents" FROM "Job" WHERE id = 'ckdrift0001'`);
      expect(drifted).toEqual([{ status: 'COMPLETED', llmThinking: 'finished while nobody watched', costInCents: 42 }]);
      // The rollback's kill switch is still on: a lost job goes back to legacy, not to pg-boss.
      const { rows: lost } = await pool.query(`SELECT status, engine FROM "Job" WHERE id = 'cklost00001'`);
      expect(lost).toEqual([{ status: 'PENDING', engine: 'LEGACY' }]);
    } finally {
      await producer.close();
    }
  }, 60_000);

  describe('a misconfigured adapter fails with a clear message and writes nothing', () => {
    /** A variant of the example config, with one thing wrong. */
    async function variant(name: string, legacy: string): Promise<string> {
      const file = join(project, name);
      await writeFile(
        file,
        `export default {
          legacy: {
            table: 'Job',
            jobType: 'evaluation.process',
            toJob: (row) => ({ type: 'evaluation.process', payload: { evaluationId: row.evaluationId, batchId: row.agentEvalBatchId } }),
            toRow: (_type, payload) => ({ evaluationId: payload.evaluationId, agentEvalBatchId: payload.batchId }),
            ${legacy}
          },
          registry: './jobs.ts',
        };\n`,
      );
      return name;
    }

    const snapshot = async () => ({
      rows: (await pool.query(`SELECT * FROM "Job" ORDER BY id`)).rows,
      quarantine: await pool.query(`SELECT 1 FROM "MigrationQuarantine"`).then((r) => r.rowCount, () => 0),
      jobs: await pool.query(`SELECT count(*) FROM pgboss.job`).then((r) => r.rows[0], () => null),
    });

    it.each([
      ['an unknown column', `columns: { logs: 'log_text' },`, 'status', /legacy\.columns\.logs: column "log_text" does not exist in public\.Job/],
      ['a wrong status value', `status: { running: 'IN_PROGRESS' },`, 'status', /legacy\.status\.running: 'IN_PROGRESS' is not a value of "JobStatus" \(PENDING, RUNNING, COMPLETED, FAILED\)/],
      ['a toJob that throws', `toJob: (row) => { throw new Error('no evaluation for ' + row.id); },`, 'migrate', /legacy\.toJob failed on row c\w+ of public\.Job: no evaluation for c\w+/],
      ['a missing function', `toRow: undefined,`, 'status', /legacy\.toRow: must be a function/],
      ['an unknown field', `colums: {},`, 'status', /legacy: unknown field colums/],
      ['an unknown retry model', `retries: 'sometimes',`, 'status', /legacy\.retries: must be 'new-row' or 'same-row'/],
      ['a scheduled-time column the table lacks', `columns: { runAt: 'runWhen' },`, 'status', /legacy\.columns\.runAt: column "runWhen" does not exist in public\.Job/],
      ['an onResult that returns a column cutover writes on completion', `onResult: (result) => ({ costInCents: 1, error: null }),`, 'status', /legacy\.onResult returns column "error", which cutover writes itself when a job finishes/],
      ['a bookkeeping column named but missing', `columns: { updatedAt: 'modifiedAt' },`, 'migrate', /legacy\.columns\.updatedAt: column "modifiedAt" does not exist in public\.Job/],
    ])('%s', async (_name, legacy, command, message) => {
      // The first test's rollback left the kill switch on, under which migrate would not start.
      expect((await cli('rollout', 'unkill')).code).toBe(0);
      await produce(3, 'PENDING', 'x');
      const config = await variant(`bad-${randomBytes(3).toString('hex')}.config.mjs`, legacy);
      const before = await snapshot();
      const result = await cli('--config', config, command, ...(command === 'migrate' ? ['--yes'] : []));
      expect(result.code).toBe(2);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toMatch(message);
      expect(await snapshot()).toEqual(before);
    });

    it('init checks the adapter against the table before writing anything', async () => {
      const config = await variant('bad-init.config.mjs', `columns: { originalJobId: 'parentId' },`);
      const result = await runCliInProcess(['--config', config, 'init', '--out', 'never.sql', '--database-url', database.url], { cwd: project });
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/legacy\.columns\.originalJobId: column "parentId" does not exist/);
      await expect(readFile(join(project, 'never.sql'))).rejects.toThrow();
    });
  });
});
