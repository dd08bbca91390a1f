import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMPONENTS, roleName, type Component } from '../../src/adopt/roles.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { runCliInProcess, type CliResult } from '../helpers/cli.js';
import { startCli, type CliProcess } from '../helpers/process.js';
import { pollUntil } from '../helpers/wait.js';

// RUNBOOK.md §8 as a security review would check it: the grants `cutover init --roles` prints,
// applied by the owner to group roles, with one non-superuser LOGIN role per component. The
// whole story runs, each part under its own role; a part doing another's duty is refused in
// one line that names the role and what it lacks, and writes nothing.

const prefix = `t${randomBytes(4).toString('hex')}_`;
const password = `pw-${randomBytes(8).toString('hex')}`;
/** The login role of each component: a member of its group role, nothing else. */
const login = (component: Component) => `${prefix}${component.replace(/-/g, '')}_login`;

let database: TestDatabase;
let admin: pg.Client;

function urlAs(component: Component): string {
  const url = new URL(database.url);
  url.username = login(component);
  url.password = password;
  return url.toString();
}

/** What every command and worker of the story printed on stderr: no refusal may hide in a log line. */
const logs: string[] = [];

async function as(component: Component, ...args: string[]): Promise<CliResult> {
  const result = await runCliInProcess([...args, '--database-url', urlAs(component)]);
  logs.push(`${component} ${args.join(' ')}: ${result.stderr}`);
  return result;
}

const worker = (component: 'legacy-runner' | 'pgboss-worker', engine: string): CliProcess =>
  startCli(['worker', '--engine', engine, '--concurrency', '4', ...(engine === 'legacy' ? ['--poll-ms', '100'] : ['--supervise-interval', '1']), '--database-url', urlAs(component)]);

async function count(sql: string): Promise<number> {
  return Number((await admin.query<{ n: string }>(sql)).rows[0]!.n);
}

/** Everything a refused command might have touched. */
async function state(): Promise<unknown> {
  const { rows } = await admin.query(`
    SELECT (SELECT count(*) FROM "Job") AS jobs,
           (SELECT json_agg(j ORDER BY j.id) FROM (SELECT id, status, engine, "updatedAt" FROM "Job") j) AS rows,
           (SELECT json_agg(f ORDER BY f."jobType") FROM "RolloutFlag" f) AS flags,
           (SELECT count(*) FROM "RolloutEvent") AS events,
           (SELECT count(*) FROM pgboss.job) AS boss_jobs,
           (SELECT json_agg(name ORDER BY name) FROM pgboss.queue) AS queues`);
  return rows[0];
}

async function stop(process: CliProcess): Promise<void> {
  process.kill('SIGTERM');
  const { code } = await process.exited;
  logs.push(`worker: ${process.stderr()}`);
  expect(code, process.stderr()).toBe(0);
}

beforeAll(async () => {
  database = await createTestDatabase();
  admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  // The owner installs pg-boss once: the first pg-boss worker, run under the owner's login,
  // creates pgboss's schema and the queues of the registry; stopped once they are there.
  const owner = startCli(['worker', '--engine', 'pgboss', '--database-url', database.url]);
  await pollUntil('pg-boss installed by the owner', async () => (await count(`SELECT count(*) AS n FROM pg_tables WHERE schemaname = 'pgboss' AND tablename = 'queue'`)) > 0 && (await count(`SELECT count(*) AS n FROM pgboss.queue`)) >= 6);
  await stop(owner);

  const sql = await runCliInProcess(['init', '--roles', '--role-prefix', prefix]);
  expect(sql.code, sql.stderr).toBe(0);
  await admin.query(sql.stdout);
  // Applying it again changes nothing and fails nothing.
  await admin.query(sql.stdout);
  for (const component of COMPONENTS) {
    await admin.query(`CREATE ROLE ${login(component)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '${password}' IN ROLE ${roleName(component, prefix)}`);
  }
});

afterAll(async () => {
  await admin?.end();
  await database?.drop();
  // Roles belong to the server, not the database: drop them once their database is gone.
  const server = new pg.Client({ connectionString: new URL('/postgres', database.url).toString() });
  await server.connect();
  try {
    for (const component of COMPONENTS) await server.query(`DROP ROLE IF EXISTS ${login(component)}, ${roleName(component, prefix)}`);
  } finally {
    await server.end();
  }
});

describe('least privilege: every component under its own role', () => {
  it('the roles are what they claim: LOGIN members without superuser, DDL or role rights', async () => {
    const { rows } = await admin.query<{ rolname: string; rolsuper: boolean; rolcreatedb: boolean; rolcreaterole: boolean; can_create: boolean }>(
      `SELECT rolname, rolsuper, rolcreatedb, rolcreaterole,
              has_database_privilege(rolname, current_database(), 'CREATE') OR has_schema_privilege(rolname, 'pgboss', 'CREATE') AS can_create
         FROM pg_roles WHERE rolname LIKE $1 || '%\\_login'`,
      [prefix],
    );
    expect(rows).toHaveLength(COMPONENTS.length);
    for (const row of rows) expect(row, row.rolname).toMatchObject({ rolsuper: false, rolcreatedb: false, rolcreaterole: false, can_create: false });
  });

  it('runs the whole story: enqueue, both workers, hand-back, dead letters, migrate, rollback, reconcile, plans', async () => {
    const ok = async (component: Component, ...args: string[]) => {
      const result = await as(component, ...args);
      expect(result.code, `${component} ${args.join(' ')}: ${result.stdout}${result.stderr}`).toBe(0);
      return result;
    };
    const completed = () => count(`SELECT count(*) AS n FROM "Job" WHERE status = 'COMPLETED'`);

    // Both engines at 50 %: the producer writes rows and pg-boss jobs, both workers run them, and
    // pg-boss supervises (every second here) until each queue has had a maintenance pass.
    await ok('operator', 'rollout', 'set', '50', '--reason', 'least privilege');
    await ok('producer', 'enqueue', 'notification.send', '{"to":"a","message":"m"}', '--count', '40');
    const started = new Date();
    const legacy = worker('legacy-runner', 'legacy');
    const boss = worker('pgboss-worker', 'pgboss');
    await pollUntil('40 jobs done on both engines', async () => (await completed()) === 40, { timeoutMs: 45_000 });
    expect(await count(`SELECT count(DISTINCT engine) AS n FROM "Job"`)).toBe(2);
    await pollUntil('a supervision pass over every queue', async () => (await admin.query(`SELECT 1 FROM pgboss.queue WHERE maintain_on IS NULL OR maintain_on < $1`, [started])).rowCount === 0, { timeoutMs: 20_000 });

    // At 100 %, a job that can never succeed is dead-lettered; the dashboard lists it, the operator retries it.
    await ok('operator', 'rollout', 'set', '100');
    await ok('producer', 'enqueue', 'import.article', '{"url":"ftp://example.com/a"}');
    await pollUntil('a dead letter', async () => (await count(`SELECT count(*) AS n FROM pgboss.job WHERE name = 'import.article.dlq'`)) === 1);
    expect(JSON.parse((await ok('dashboard', 'dlq', 'list', '--json')).stdout).deadLetters).toHaveLength(1);
    await ok('operator', 'dlq', 'retry');
    await stop(boss);

    // Under a kill switch a pg-boss worker hands back what it fetches, unrun.
    await ok('producer', 'enqueue', 'notification.send', '{"to":"b","message":"m"}', '--count', '5');
    await ok('operator', 'rollout', 'kill', '--reason', 'hand-back');
    const handing = worker('pgboss-worker', 'pgboss');
    await pollUntil('5 jobs handed back', async () => (await count(`SELECT count(*) AS n FROM "Job" WHERE type = 'notification.send' AND "routeReason" = 'handedback'`)) === 5);
    await stop(handing);
    await pollUntil('the handed-back jobs done on legacy', async () => (await completed()) === 45, { timeoutMs: 45_000 });
    await stop(legacy);

    // A legacy backlog moved to pg-boss, and back.
    await ok('operator', 'rollout', 'unkill');
    await ok('operator', 'rollout', 'set', '0');
    await ok('producer', 'enqueue', 'evaluation.process', '{"documentId":"d","agentId":"a"}', '--count', '30');
    expect(JSON.parse((await ok('operator', 'migrate', '--json')).stdout)).toMatchObject({ moved: 30, quarantined: 0 });
    expect(JSON.parse((await ok('operator', 'rollback', '--yes', '--json')).stdout)).toMatchObject({ moved: 30 });
    await ok('operator', 'reconcile', '--fix', '--json');
    await ok('operator', 'rollout', 'unkill');
    const after = worker('legacy-runner', 'legacy');
    await pollUntil('the rolled-back backlog done on legacy', async () => (await completed()) === 75, { timeoutMs: 45_000 });
    await stop(after);

    // A plan, started and aborted (which rolls back) by the operator.
    await ok('operator', 'plan', 'start', 'rollout/default.yaml');
    await ok('operator', 'plan', 'advance', '--yes');
    await ok('operator', 'plan', 'abort', '--yes');

    await ok('operator', 'reconcile');
    for (const args of [['status', '--json'], ['rollout', 'get'], ['rollout', 'history', '--json'], ['plan', 'status']]) await ok('dashboard', ...args);
    // /metrics under the dashboard's role counts pg-boss's kept warnings (absent when it may not read them).
    expect((await ok('dashboard', 'metrics')).stdout).toContain('# TYPE cutover_pgboss_warnings_total counter');
    // No component was refused anything along the way, not even in a log line or a job's error.
    expect(logs.filter((log) => /permission denied|must be owner/i.test(log))).toEqual([]);
    expect(await count(`SELECT count(*) AS n FROM "Job" WHERE error ILIKE '%permission denied%'`)).toBe(0);
  }, 240_000);

  it.each([
    ['the producer', 'producer', ['rollback', '--yes'], 'rollback', 'operator'],
    ['the producer', 'producer', ['rollout', 'set', '100'], 'rollout set', 'operator'],
    ['the dashboard', 'dashboard', ['rollout', 'kill'], 'rollout kill', 'operator'],
    ['the pg-boss worker', 'pgboss-worker', ['migrate'], 'migrate', 'operator'],
    ['the dashboard', 'dashboard', ['enqueue', 'notification.send', '{"to":"a","message":"m"}'], 'enqueue', 'producer'],
  ] as const)('%s running `%s` outside its duty is refused in one line, and nothing is written', async (_who, component, args, command, needs) => {
    const before = await state();
    const result = await as(component, ...args);
    expect(result.code).toBe(3);
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines, result.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^cutover: permission denied for table \\S+: role "${login(component)}" may not run \`cutover ${command}\`; it needs the ${needs}'s grants`));
    expect(result.stderr + result.stdout).not.toContain(password);
    expect(await state()).toEqual(before);
  });
});

describe('pg-boss upgrades stay the owner\'s', () => {
  it('a process of another role that finds an older pg-boss schema stops, saying who must upgrade it', async () => {
    // As if this pg-boss were one version newer than the schema the owner installed.
    await admin.query(`UPDATE pgboss.version SET version = version - 1`);
    try {
      const before = await state();
      const result = await as('producer', 'enqueue', 'notification.send', '{"to":"a","message":"m"}');
      expect(result.code).toBe(3);
      expect(result.stderr.trimEnd().split('\n')).toEqual([
        expect.stringMatching(new RegExp(`^cutover: pg-boss wants to upgrade its schema, which only its owner may do, and role "${login('producer')}" is not it \\(must be owner of .*\\): start the new pg-boss once as the database owner`)),
      ]);
      expect(await state()).toEqual(before);
    } finally {
      await admin.query(`UPDATE pgboss.version SET version = version + 1`);
    }
  });
});
