import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, type Pool } from '../../src/db/pool.js';
import { createLogger } from '../../src/support/log.js';
import { startBoss } from '../../src/pgboss/boss.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { cliEntry, repoRoot, runCliInProcess, type CliResult } from '../helpers/cli.js';
import { addLegacyJobs } from '../helpers/jobs.js';
import { databaseState } from './refusals.shared.js';

// Secrets and accountability. Connection strings carry passwords; none may
// reach a terminal, a --json document, a log line, a stack trace or a row cutover writes. Every
// change is audited with who made it, and a destructive command asks first on a terminal.

const dir = mkdtempSync(join(tmpdir(), 'cutover-secrets-'));
/** A password with every character a URL must encode, so both spellings can be looked for. */
const password = `S3cret:${randomBytes(6).toString('hex')}@/#?`;
const spellings = [password, encodeURIComponent(password), password.slice(0, 13)];
const role = `secrets_${randomBytes(4).toString('hex')}`;

let database: TestDatabase;
let pool: Pool;
/** The test database, logged in to as `role` with the password. */
let url: string;

beforeAll(async () => {
  database = await createTestDatabase();
  pool = createPool(database.url, { max: 2 });
  await pool.query(`CREATE ROLE ${role} LOGIN SUPERUSER PASSWORD '${password.replace(/'/g, "''")}'`);
  const parsed = new URL(database.url);
  parsed.username = role;
  parsed.password = encodeURIComponent(password);
  url = parsed.toString();
  await writeFile(join(dir, 'plan.yaml'), 'name: audited\nsteps:\n  - setWeight: 5\n  - pause: {}\n  - setWeight: 10\n');
  await writeFile(join(dir, 'throws.mjs'), `throw new Error('cannot reach postgresql://svc:${password.replace(/'/g, "\\'")}@vault.internal/secrets');\n`);
});

afterAll(async () => {
  await pool?.end();
  await database?.drop();
  const server = new pg.Client({ connectionString: new URL('/postgres', database.url).toString() });
  await server.connect();
  await server.query(`DROP ROLE IF EXISTS ${role}`).finally(() => server.end());
  await rm(dir, { recursive: true, force: true });
});

function expectNoSecret(text: string, where: string): void {
  for (const secret of spellings) expect(text, where).not.toContain(secret);
}

describe('no password anywhere', () => {
  it('in --json documents, --verbose logs, and the rows of every command that writes', async () => {
    await addLegacyJobs(pool, 'evaluation.process', [{ documentId: 'd', agentId: 'a' }]);
    const commands = [
      ['db', 'status'],
      ['rollout', 'set', '50', '--reason', 'secrets'],
      ['rollout', 'get'],
      ['enqueue', 'evaluation.process', '{"documentId":"d","agentId":"a"}', '--count', '5'],
      ['status'],
      ['migrate'],
      ['reconcile', '--fix'],
      ['rollback', '--yes'],
      ['rollout', 'unkill'],
      ['plan', 'start', join(dir, 'plan.yaml'), '--skip-preflight'],
      ['plan', 'advance', '--yes'],
      ['plan', 'status'],
      ['plan', 'abort', '--yes'],
      ['dlq', 'list'],
      ['rollout', 'history'],
    ];
    for (const args of commands) {
      const result = await runCliInProcess([...args, '--json', '--verbose', '--database-url', url], { env: { DATABASE_URL: '' } });
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
      expect(() => JSON.parse(result.stdout), args.join(' ')).not.toThrow();
      expectNoSecret(result.stdout, `stdout of ${args.join(' ')}`);
      expectNoSecret(result.stderr, `stderr of ${args.join(' ')}`);
    }
    // Everything cutover wrote, as text: the audit log, plans, reconcile runs, quarantine, rows, pg-boss jobs.
    const { rows } = await pool.query<{ dump: string }>(`
      SELECT concat_ws(E'\\n',
        (SELECT string_agg(e::text, E'\\n') FROM "RolloutEvent" e),
        (SELECT string_agg(p::text, E'\\n') FROM "RolloutPlanRun" p),
        (SELECT string_agg(r::text, E'\\n') FROM "ReconcileRun" r),
        (SELECT string_agg(q::text, E'\\n') FROM "MigrationQuarantine" q),
        (SELECT string_agg(f::text, E'\\n') FROM "RolloutFlag" f),
        (SELECT string_agg(j::text, E'\\n') FROM "Job" j),
        (SELECT string_agg(b::text, E'\\n') FROM pgboss.job b)) AS dump`);
    expect(rows[0]!.dump).toContain('secrets'); // the reason given above: the dump holds the audit log
    expectNoSecret(rows[0]!.dump, 'rows written');
  }, 240_000);

  it.each([
    ['a config file whose error quotes a connection string', ['status', '--config', join(dir, 'throws.mjs')], 2, /^cutover: cannot load .*throws\.mjs: cannot reach postgresql:\/\/svc:\*\*\*@vault\.internal\/secrets$/],
    ['a wrong password', ['status'], 3, /^cutover: cannot reach the database at .*: password authentication failed for user/],
  ] as const)('in --verbose stack traces: %s', async (_case, args, code, message) => {
    const wrong = new URL(url);
    if (args[0] === 'status' && args.length === 1) wrong.password = encodeURIComponent(`${password}x`);
    const result = await runCliInProcess([...args, '--verbose', '--database-url', wrong.toString()], { env: { DATABASE_URL: '' } });
    expect(result.code).toBe(code);
    const [first, ...stack] = result.stderr.trimEnd().split('\n');
    expect(first).toMatch(message);
    expect(stack.some((line) => /^\s+at /.test(line)), result.stderr).toBe(true);
    expectNoSecret(result.stderr + result.stdout, 'stderr with --verbose');
  });
});

describe('every change is audited with its actor', () => {
  // In order, on one database: each command's audit rows all carry the --actor it was given.
  const commands: { name: string; args: string[]; action: string; before?: () => Promise<void>; todo?: string }[] = [
    { name: 'rollout set', args: ['rollout', 'set', '10'], action: 'flag.set' },
    { name: 'rollout kill', args: ['rollout', 'kill'], action: 'flag.kill' },
    { name: 'rollout unkill', args: ['rollout', 'unkill'], action: 'flag.unkill' },
    { name: 'migrate', args: ['migrate'], action: 'migrate' },
    {
      name: 'reconcile --fix',
      args: ['reconcile', '--fix', '--grace', '0'],
      action: 'reconcile.fix.lost',
      // A lost job: the row says pg-boss owns it, pg-boss has none.
      before: async () => {
        const enqueued = await runCliInProcess(['rollout', 'set', '100', '--database-url', database.url]);
        expect(enqueued.code).toBe(0);
        expect((await runCliInProcess(['enqueue', 'evaluation.process', '{"documentId":"lost","agentId":"a"}', '--database-url', database.url])).code).toBe(0);
        const boss = await startBoss({ databaseUrl: database.url, log: createLogger({ level: 'silent' }) });
        try {
          const [lost] = await boss.findJobs('evaluation.process', { data: { documentId: 'lost' } });
          expect(lost).toBeDefined();
          await boss.deleteJob('evaluation.process', lost!.id);
        } finally {
          await boss.stop({ graceful: false, close: true });
        }
      },
    },
    { name: 'rollback', args: ['rollback', '--yes'], action: 'rollback' },
    {
      name: 'plan start',
      args: ['plan', 'start', join(dir, 'plan.yaml'), '--skip-preflight'],
      action: 'plan.start',
      before: async () => void (await runCliInProcess(['rollout', 'unkill', '--database-url', database.url])),
    },
    { name: 'plan advance', args: ['plan', 'advance', '--yes'], action: 'plan.advance' },
    { name: 'plan abort', args: ['plan', 'abort', '--yes'], action: 'plan.aborted' },
    {
      name: 'dlq retry',
      args: ['dlq', 'retry'],
      action: 'dlq.retry',
      // A job that failed for good, its copy in the dead letter queue.
      before: async () => {
        const boss = await startBoss({ databaseUrl: database.url, log: createLogger({ level: 'silent' }) });
        try {
          const id = await boss.send('evaluation.process', { documentId: 'dead', agentId: 'a' }, { retryLimit: 0, priority: 1_000_000 });
          const [job] = await boss.fetch('evaluation.process');
          expect(job?.id).toBe(id);
          await boss.fail('evaluation.process', id!, { message: 'broken' });
        } finally {
          await boss.stop({ graceful: false, close: true });
        }
      },
    },
  ];

  let last = 0;
  const lastEvent = async () => Number((await pool.query<{ id: string | null }>(`SELECT max(id) AS id FROM "RolloutEvent"`)).rows[0]!.id ?? 0);
  beforeAll(async () => {
    await addLegacyJobs(pool, 'evaluation.process', [{ documentId: 'backlog', agentId: 'a' }]);
    last = await lastEvent();
  });

  for (const [index, command] of commands.entries()) {
    if (command.todo) {
      it.todo(`${command.name}: ${command.todo}`);
      continue;
    }
    it(`${command.name} writes ${command.action} as its --actor`, async () => {
      await command.before?.();
      last = await lastEvent();
      const actor = `operator-${index}`;
      const result: CliResult = await runCliInProcess([...command.args, '--actor', actor, '--database-url', database.url]);
      expect(result.code, result.stdout + result.stderr).toBe(0);
      const { rows } = await pool.query<{ actor: string; action: string }>(`SELECT actor, action FROM "RolloutEvent" WHERE id > $1 ORDER BY id`, [last]);
      expect(rows.map((r) => r.action)).toContain(command.action);
      expect(rows.filter((r) => r.actor !== actor), `every row ${command.name} wrote names ${actor}`).toEqual([]);
    });
  }
});

/** The built CLI on a pseudo-terminal (util-linux `script`), with `input` typed into it. */
function onTerminal(args: readonly string[], input: string): Promise<{ code: number | null; output: string }> {
  const quote = (value: string) => `'${value.replace(/'/g, `'\\''`)}'`;
  const command = [process.execPath, cliEntry, ...args].map(quote).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn('script', ['-qec', command, '/dev/null'], { cwd: repoRoot, env: { ...process.env, CUTOVER_LOG_LEVEL: 'warn' }, stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    // Typed once the prompt is up, as a person would.
    const seen = (chunk: Buffer) => {
      output += chunk.toString();
      if (/\[y\/N\] /.test(output) && child.stdin.writable) child.stdin.end(input);
    };
    child.stdout.on('data', seen);
    child.stderr.on('data', seen);
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe('destructive commands ask on a terminal', () => {
  it.each([
    ['rollback, answered no', ['rollback'], 'n\r', /roll back every job type to the legacy runner\? \[y\/N\]/],
    ['rollback, Ctrl-C at the prompt', ['rollback'], '\u0003', /roll back every job type to the legacy runner\? \[y\/N\]/],
    ['plan advance, answered no', ['plan', 'advance'], 'n\r', /advance audited past step \d+\? \[y\/N\]/],
  ] as const)('%s: nothing changes', async (_case, args, input, prompt) => {
    await runCliInProcess(['rollout', 'unkill', '--database-url', database.url]);
    await runCliInProcess(['plan', 'start', join(dir, 'plan.yaml'), '--skip-preflight', '--database-url', database.url]);
    const before = await databaseState(database.url);
    const started = Date.now();
    const result = await onTerminal([...args, '--database-url', database.url], input);
    expect(result.output).toMatch(prompt);
    expect(result.output).toMatch(/not confirmed; nothing changed/);
    expect(result.code).not.toBe(0);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(await databaseState(database.url)).toEqual(before);
  });

  it('rollback, answered yes: it runs', async () => {
    const result = await onTerminal(['rollback', '--json', '--database-url', database.url], 'y\r');
    expect(result.output).toMatch(/\[y\/N\]/);
    expect(result.code, result.output).toBe(0);
    const { rows } = await pool.query<{ killSwitch: boolean }>(`SELECT "killSwitch" FROM "RolloutFlag" WHERE "jobType" = '*'`);
    expect(rows[0]?.killSwitch).toBe(true);
  });
});
