import { mkdtempSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtinMigrationsDir } from '../../src/db/migrate.js';
import { createPool, type Pool } from '../../src/db/pool.js';
import { MAX_PAYLOAD_BYTES, loadRegistry } from '../../src/jobs/registry.js';
import { startBoss } from '../../src/pgboss/boss.js';
import { ensureQueues } from '../../src/pgboss/queues.js';
import { createEmptyDatabase, createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { quietLog } from '../helpers/engines.js';
import { addLegacyJobs } from '../helpers/jobs.js';
import { runCliInProcess } from '../helpers/cli.js';
import { databaseState, expectRefused, type Refusal } from './refusals.shared.js';

// The bad-input catalogue, part 2: the database itself is the wrong input. A
// connection string that is malformed, points nowhere or at the wrong password; a database
// without cutover's migrations, or without pg-boss. Every command says what to do in one line
// and writes nothing: no table, no row, not pg-boss's schema.

const dir = mkdtempSync(join(tmpdir(), 'cutover-bad-db-'));
/** No cutover migration applied. */
let bare: TestDatabase;
/** Only the legacy table, as a legacy system has it (0001_legacy): no cutover columns, no cutover tables. */
let legacyOnly: TestDatabase;
/** cutover's migrations applied, pg-boss never started, a plan started at an analysis step. */
let noBoss: TestDatabase;

async function exec(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

function withPassword(url: string, password: string): string {
  const parsed = new URL(url);
  parsed.password = password;
  return parsed.toString();
}

beforeAll(async () => {
  [bare, legacyOnly, noBoss] = await Promise.all([createEmptyDatabase(), createEmptyDatabase(), createTestDatabase()]);
  await exec(legacyOnly.url, await readFile(join(builtinMigrationsDir, '0001_legacy', 'migration.sql'), 'utf8'));
  await writeFile(join(dir, 'analysis.yaml'), 'name: first-analysis\nsteps:\n  - analysis: {}\n  - setWeight: 5\n');
  const started = await runCliInProcess(['plan', 'start', join(dir, 'analysis.yaml'), '--database-url', noBoss.url]);
  expect(started.code, started.stderr).toBe(0);
});

afterAll(async () => {
  await Promise.all([bare?.drop(), legacyOnly?.drop(), noBoss?.drop()]);
  await rm(dir, { recursive: true, force: true });
});

interface Case extends Refusal {
  args: string[];
  /** The database checked for writes, and given as --database-url unless `url` is. */
  database: () => TestDatabase;
  url?: () => string;
  env?: NodeJS.ProcessEnv;
  withinMs?: number;
  /** Must appear nowhere in the output. */
  secret?: string;
}

const payload = '{"documentId":"d1","agentId":"a1"}';
const MIGRATE = /run `cutover db migrate` first; nothing was changed$/;

const cases: Record<string, Case> = {
  // Connection strings.
  'a malformed connection string': {
    args: ['status'],
    database: () => noBoss,
    url: () => 'postgresql://cutover:s3cret-pw@db.internal:port/cutover',
    code: 2,
    message: /^cutover: the database connection string is malformed \(Invalid URL\): check the port, and percent-encode special characters/,
    secret: 's3cret-pw',
  },
  'a connection string of another driver': {
    args: ['status'],
    database: () => noBoss,
    url: () => 'mysql://root:s3cret-pw@db.internal/cutover',
    code: 2,
    message: /^cutover: --database-url must be a postgres:\/\/ or postgresql:\/\/ connection string, got a mysql:\/\/ URL \(the rest is not shown\)$/,
    secret: 's3cret-pw',
  },
  'DATABASE_URL that is not a URL': {
    args: ['status'],
    database: () => noBoss,
    url: () => '',
    env: { DATABASE_URL: 'host=db.internal password=s3cret-pw' },
    code: 2,
    message: /^cutover: DATABASE_URL must be a postgres:\/\/ or postgresql:\/\/ connection string, got something else/,
    secret: 's3cret-pw',
  },
  'an unreachable database (a closed port)': {
    args: ['rollout', 'set', '5'],
    database: () => noBoss,
    url: () => 'postgresql://cutover:s3cret-pw@127.0.0.1:1/cutover',
    code: 3,
    message: /^cutover: cannot reach the database at 127\.0\.0\.1:1\/cutover: connect ECONNREFUSED 127\.0\.0\.1:1$/,
    withinMs: 5000,
    secret: 's3cret-pw',
  },
  'a wrong password': {
    args: ['rollout', 'set', '5'],
    database: () => noBoss,
    url: () => withPassword(noBoss.url, 'wrong-s3cret'),
    code: 3,
    message: /^cutover: cannot reach the database at .*: password authentication failed for user/,
    secret: 'wrong-s3cret',
  },
  'a database that does not exist': {
    args: ['status'],
    database: () => noBoss,
    url: () => noBoss.url.replace(/\/[^/?]+(\?|$)/, '/cutover_no_such_db$1'),
    code: 3,
    message: /^cutover: cannot reach the database at .*cutover_no_such_db: database "cutover_no_such_db" does not exist$/,
  },

  // A database without cutover's migrations: every command, nothing written (not even pg-boss's schema).
  'status without migrations': { args: ['status'], database: () => bare, code: 2, message: /^cutover: this database has none of cutover's tables \(no public.Job, no RolloutFlag\): run `cutover db migrate` first; nothing was changed$/ },
  'enqueue without migrations': { args: ['enqueue', 'evaluation.process', payload], database: () => bare, code: 2, message: MIGRATE },
  'rollout set without migrations': { args: ['rollout', 'set', '5'], database: () => bare, code: 2, message: MIGRATE },
  'rollout history without migrations': { args: ['rollout', 'history'], database: () => bare, code: 2, message: MIGRATE },
  'migrate without migrations': { args: ['migrate'], database: () => bare, code: 2, message: MIGRATE },
  'rollback without migrations': { args: ['rollback', '--yes'], database: () => bare, code: 2, message: MIGRATE },
  'reconcile without migrations': { args: ['reconcile', '--fix'], database: () => bare, code: 2, message: MIGRATE },
  'plan start without migrations': { args: ['plan', 'start', 'rollout/default.yaml'], database: () => bare, code: 2, message: MIGRATE },
  'dlq list without migrations': { args: ['dlq', 'list'], database: () => bare, code: 2, message: MIGRATE },
  'a pg-boss worker without migrations': { args: ['worker', '--engine', 'pgboss'], database: () => bare, code: 2, message: MIGRATE },
  'a legacy runner without migrations': { args: ['worker', '--engine', 'legacy'], database: () => bare, code: 2, message: MIGRATE },
  'a legacy table without cutover\'s columns': {
    args: ['enqueue', 'evaluation.process', payload],
    database: () => legacyOnly,
    code: 2,
    message: /^cutover: public.Job lacks cutover's columns \(engine, pgbossJobId, routeReason, bucket, workerId, heartbeatAt, runAfter\): run `cutover db migrate` first; nothing was changed$/,
  },

  // Migrated, but no pg-boss worker has ever run: what only reads says so.
  'plan advance before any pg-boss worker ran': {
    args: ['plan', 'advance', '--yes'],
    database: () => noBoss,
    code: 2,
    message: /^cutover: pg-boss is not installed in this database yet \(no pgboss.job\): no pg-boss worker has run here. Start one once \(`cutover worker --engine pgboss`.*then run `cutover plan advance` again; nothing was changed$/,
  },
  'reconcile before any pg-boss worker ran': { args: ['reconcile'], database: () => noBoss, code: 2, message: /^cutover: pg-boss is not installed in this database yet .*run `cutover reconcile` again/ },
  'dlq list before any pg-boss worker ran': { args: ['dlq', 'list'], database: () => noBoss, code: 2, message: /^cutover: pg-boss is not installed in this database yet .*run `cutover dlq list` again/ },
};

describe('the bad-input catalogue: the database', () => {
  it.each(Object.entries(cases))('%s', async (_name, c) => {
    const database = c.database();
    const before = await databaseState(database.url);
    const started = Date.now();
    const url = c.url?.() ?? database.url;
    const result = await runCliInProcess([...c.args, ...(url ? ['--database-url', url] : [])], { env: { DATABASE_URL: '', ...c.env } });
    const elapsed = Date.now() - started;
    expectRefused(result, c);
    if (c.withinMs) expect(elapsed).toBeLessThan(c.withinMs);
    if (c.secret) expect(result.stdout + result.stderr).not.toContain(c.secret);
    expect(await databaseState(database.url)).toEqual(before);
  });

  it(`has its cases (${Object.keys(cases).length})`, () => {
    expect(Object.keys(cases).length).toBeGreaterThanOrEqual(20);
  });

  it('a command that needs pg-boss installs it where it is missing, and says so', async () => {
    const database = await createTestDatabase();
    try {
      const result = await runCliInProcess(['enqueue', 'evaluation.process', payload, '--database-url', database.url], { env: { CUTOVER_LOG_LEVEL: 'info' } });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toContain("pg-boss was not installed in this database: installed its schema 'pgboss'");
      // The next one finds it there and says nothing about it.
      const again = await runCliInProcess(['enqueue', 'evaluation.process', payload, '--database-url', database.url], { env: { CUTOVER_LOG_LEVEL: 'info' } });
      expect(again.stderr).not.toContain('pg-boss was not installed');
    } finally {
      await database.drop();
    }
  });
});

describe('migrate with legacy rows it cannot move', () => {
  let database: TestDatabase;
  let pool: Pool;
  beforeAll(async () => {
    database = await createTestDatabase();
    pool = createPool(database.url, { max: 2 });
    const boss = await startBoss({ databaseUrl: database.url, log: quietLog, max: 2 });
    await ensureQueues(boss, await loadRegistry(), quietLog);
    await boss.stop({ graceful: false, close: true });
  });
  afterAll(async () => {
    await pool?.end();
    await database?.drop();
  });

  it('quarantines a payload over the size limit and a type name carrying SQL, with the reason; moves the rest', async () => {
    const [big] = await addLegacyJobs(pool, 'evaluation.process', [{ documentId: 'x'.repeat(MAX_PAYLOAD_BYTES), agentId: 'a' }]);
    const [sql] = await addLegacyJobs(pool, `evaluation.process'); DELETE FROM "Job"; --`, [{ documentId: 'd', agentId: 'a' }]);
    const fine = await addLegacyJobs(pool, 'evaluation.process', [{ documentId: 'd1', agentId: 'a' }, { documentId: 'd2', agentId: 'a' }]);

    const result = await runCliInProcess(['migrate', '--json', '--database-url', database.url]);
    expect(result.code, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary).toMatchObject({ moved: 2, quarantined: 2 });
    const reasons = Object.fromEntries((summary.quarantine as { jobId: string; reason: string }[]).map((q) => [q.jobId, q.reason]));
    expect(reasons[big!]).toMatch(new RegExp(`^invalid payload for evaluation.process: payload is \\d+ bytes of JSON, over the limit of ${MAX_PAYLOAD_BYTES} \\(1 MiB\\)`));
    expect(reasons[sql!]).toMatch(/^unknown job type 'evaluation.process'\); DELETE FROM "Job"; --'/);

    // Both stay on legacy, untouched, with the reason kept; nothing of theirs reached pg-boss.
    const { rows } = await pool.query<{ id: string; engine: string; status: string; reason: string | null }>(
      `SELECT j.id::text, j.engine::text, j.status::text, q.reason FROM "Job" j LEFT JOIN "MigrationQuarantine" q ON q."jobId" = j.id::text ORDER BY j."createdAt"`,
    );
    expect(rows.filter((r) => r.id === big || r.id === sql)).toEqual([
      { id: big, engine: 'LEGACY', status: 'PENDING', reason: reasons[big!] },
      { id: sql, engine: 'LEGACY', status: 'PENDING', reason: reasons[sql!] },
    ]);
    expect(rows.filter((r) => fine.includes(r.id)).map((r) => r.engine)).toEqual(['PGBOSS', 'PGBOSS']);
    expect(Number((await pool.query(`SELECT count(*) AS n FROM pgboss.job WHERE id = ANY($1::uuid[])`, [[big, sql]])).rows[0].n)).toBe(0);
  });
});

describe('plan advance, twice at once', () => {
  let database: TestDatabase;
  let pool: Pool;
  beforeAll(async () => {
    database = await createTestDatabase();
    pool = createPool(database.url, { max: 2 });
    await writeFile(join(dir, 'ramp.yaml'), 'name: ramp\nsteps:\n  - setWeight: 5\n  - pause: {}\n  - setWeight: 10\n  - pause: {}\n  - setWeight: 20\n  - pause: {}\n');
    const started = await runCliInProcess(['plan', 'start', join(dir, 'ramp.yaml'), '--database-url', database.url]);
    expect(started.code, started.stderr).toBe(0);
  });
  afterAll(async () => {
    await pool?.end();
    await database?.drop();
  });

  it('applies each step once, whoever wins: never the same step twice', async () => {
    const results = await Promise.all([0, 1, 2].map(() => runCliInProcess(['plan', 'advance', '--yes', '--database-url', database.url])));
    for (const result of results) expect(result.code, result.stderr).toBe(0);
    const { rows: events } = await pool.query<{ reason: string | null }>(`SELECT reason FROM "RolloutEvent" WHERE action = 'plan.setWeight' ORDER BY id`);
    const applied = events.map((e) => e.reason);
    // However the three interleaved, the ramp's steps were applied in order, each exactly once,
    // and the run, the flag and the audit log agree on how far it got.
    expect(applied.length).toBeGreaterThanOrEqual(1);
    expect(applied).toEqual(['plan ramp step 1', 'plan ramp step 3', 'plan ramp step 5'].slice(0, applied.length));
    const { rows: run } = await pool.query<{ currentStep: number }>(`SELECT "currentStep" FROM "RolloutPlanRun"`);
    expect(run[0]!.currentStep).toBe([1, 3, 5][applied.length - 1]);
    const { rows: flag } = await pool.query<{ basisPoints: number }>(`SELECT "basisPoints" FROM "RolloutFlag" WHERE "jobType" = '*'`);
    expect(flag[0]!.basisPoints).toBe([500, 1000, 2000][applied.length - 1]);
  });
});
