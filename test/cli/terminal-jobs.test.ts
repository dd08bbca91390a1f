// At the operator's terminal: `cutover jobs`, a worker's summary line, questions
// before migrate and dlq retry, a migrate bar that ends full, a config outside the repository.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { repoRoot, runCli, runCliInProcess } from '../helpers/cli.js';
import type { TestDatabase } from '../helpers/database.js';
import { setPercent, withBossWorker, type Producer } from '../helpers/engines.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { addLegacyJobs, countWhere, fixtureRegistry } from '../helpers/jobs.js';
import { startCli } from '../helpers/process.js';
import { killTerminals, runInTerminal, startInTerminal } from '../helpers/terminal.js';
import { pollUntil } from '../helpers/wait.js';

const fixture = useEngineFixture({});
let database: TestDatabase;
let pool: Pool;
let producer: Producer;
beforeEach(() => ({ database, pool, producer } = fixture));
afterEach(killTerminals);

const common = () => ['--registry', fixtureRegistry, '--database-url', database.url];
const cli = (...args: string[]) => runCliInProcess([...args, ...common()]);
const terminal = (args: string[], options: { answers?: string[]; env?: NodeJS.ProcessEnv } = {}) => runInTerminal([...args, ...common()], options);

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'cutover-terminal-jobs-'));
  return () => rm(scratch, { recursive: true, force: true });
});

async function auditCount(action: string): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM "RolloutEvent" WHERE action = $1`, [action]);
  return Number(rows[0]?.n);
}

describe('the terminal helper', () => {
  it("passes the command's exit code through and gives it a terminal", async () => {
    const shown = await runInTerminal(['rollout', 'get', '--database-url', 'postgres://nobody@127.0.0.1:1/none']);
    expect(shown.code).toBe(3);
    expect(shown.output).toMatch(/cannot reach the database/);
  });
});

describe('cutover jobs', () => {
  it('lists every job type with its payload as JSON Schema, retries, timeout and side effects, without a database', async () => {
    // An unreachable database: the command must not need one.
    const env = { DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' };
    const json = await runCliInProcess(['jobs', '--json'], { env });
    expect(json.code, json.stderr).toBe(0);
    const { registry, jobs } = JSON.parse(json.stdout) as { registry: string | null; jobs: { name: string; payload: { jsonSchema: Record<string, unknown> | null }; retry: unknown; timeoutSeconds: number; sideEffects: string }[] };
    expect(registry).toBeNull();
    expect(jobs.map((job) => job.name)).toEqual(['evaluation.process', 'import.article', 'notification.send']);
    const evaluation = jobs[0]!;
    expect(evaluation.payload.jsonSchema).toMatchObject({
      type: 'object',
      properties: { documentId: { type: 'string', minLength: 1 }, agentId: { type: 'string' }, simulateMs: { type: 'integer', minimum: 0, maximum: 600_000 } },
      required: ['documentId', 'agentId'],
    });
    expect(evaluation).toMatchObject({ retry: { limit: 3, delaySeconds: 1, backoff: true, maxAttempts: 4, delaysSeconds: [1, 2, 4] }, timeoutSeconds: 120, sideEffects: 'idempotent' });
    expect(jobs[1]!.payload.jsonSchema).toMatchObject({ properties: { url: { type: 'string', format: 'uri' } }, required: ['url'] });
    expect(jobs[2]).toMatchObject({ sideEffects: 'external', retry: { backoff: false, delaysSeconds: [5, 5] } });

    const text = await runCliInProcess(['jobs'], { env });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^3 job type\(s\) in the demo registry/);
    expect(text.stdout).toMatch(/^evaluation\.process\n {2}payload {7}\{ documentId: string \(not empty\), agentId: string \(not empty\), simulateMs\?: integer \(0\.\.600000\), failTimes\?: integer \(>= 0\) \}$/m);
    expect(text.stdout).toMatch(/^ {2}retries {7}up to 3 after the first attempt \(4 runs at most\), waiting 1s, 2s, 4s \(doubling\)/m);
    expect(text.stdout).toMatch(/^ {2}timeout {7}120s per attempt$/m);
    expect(text.stdout).toMatch(/^ {2}side effects {2}external: /m);
  });

  it('says "shape not available" for a schema library without JSON Schema, and for a schema JSON Schema cannot express', async () => {
    const registry = join(scratch, 'registry.mjs');
    await writeFile(
      registry,
      `import { z } from ${JSON.stringify(join(repoRoot, 'node_modules', 'zod', 'index.js'))};
       import { defineJob } from ${JSON.stringify(join(repoRoot, 'dist', 'jobs', 'index.js'))};
       const handmade = { '~standard': { version: 1, vendor: 'handmade', validate: (value) => ({ value }) } };
       export default [
         // A field of a newer cutover (or of the team's own) is listed as it is declared.
         { ...defineJob({ name: 'a.handmade', schema: handmade, async handler() {} }), owner: { team: 'payments' } },
         defineJob({ name: 'b.custom', schema: z.object({ when: z.custom(() => true) }), retry: { limit: 0 }, async handler() {} }),
       ];`,
    );
    const json = await runCliInProcess(['jobs', '--json', '--registry', registry]);
    expect(json.code, json.stderr).toBe(0);
    const { jobs } = JSON.parse(json.stdout) as { jobs: { name: string; payload: { vendor: string; jsonSchema: unknown; unavailable?: string } }[] };
    expect(jobs[0]!.payload).toEqual({ vendor: 'handmade', jsonSchema: null, unavailable: expect.stringMatching(/handmade schemas do not convert to JSON Schema/) });
    expect(jobs[0]).toMatchObject({ owner: { team: 'payments' } });
    expect(jobs[1]!.payload).toMatchObject({ vendor: 'zod', jsonSchema: null, unavailable: expect.stringMatching(/cannot express this schema as JSON Schema/) });
    const text = await runCliInProcess(['jobs', '--registry', registry]);
    expect(text.stdout).toMatch(/^ {2}payload {7}shape not available: handmade schemas/m);
    expect(text.stdout).toMatch(/^ {2}retries {7}none: one attempt only$/m);
    expect(text.stdout).toMatch(/^ {2}owner {9}\{"team":"payments"\}$/m);
  });
});

describe('a worker on a terminal prints a summary line', () => {
  /** Sums the `type N done, N failed` parts of every summary line shown. */
  function totals(output: string): Record<string, { done: number; failed: number }> {
    const sums: Record<string, { done: number; failed: number }> = {};
    for (const match of output.matchAll(/(\S+) (\d+) done, (\d+) failed, \d+ running/g)) {
      const entry = (sums[match[1]!] ??= { done: 0, failed: 0 });
      entry.done += Number(match[2]);
      entry.failed += Number(match[3]);
    }
    return sums;
  }

  it('legacy: done and failed per type since the last line, and nothing more once idle', async () => {
    await addLegacyJobs(pool, 'test.noop', [{}, {}, {}]);
    await addLegacyJobs(pool, 'test.nonretryable', [{}]);
    const worker = startInTerminal(['worker', '--engine', 'legacy', '--poll-ms', '50', ...common()], { env: { CUTOVER_WORKER_SUMMARY_MS: '300' } });
    await pollUntil('the jobs done', async () => (await countWhere(pool, `status IN ('PENDING', 'RUNNING')`)) === 0);
    await pollUntil('the summary to count them', async () => totals(worker.output())['test.noop']?.done === 3 && totals(worker.output())['test.nonretryable']?.failed === 1);
    await worker.waitFor(/idle: nothing done, failed or running in the last \d/);
    expect(worker.output()).toMatch(/^\d\d:\d\d:\d\d last \d+(\.\d)?s: .*test\.noop \d done, 0 failed, \d running/m);
    worker.type('\x03');
    const { code, output } = await worker.exited;
    expect(code, output).toBe(0);
    expect(totals(output)).toEqual({ 'test.noop': { done: 3, failed: 0 }, 'test.nonretryable': { done: 0, failed: 1 } });
  });

  it('pg-boss: on by default on a terminal (every 10 s)', async () => {
    await setPercent(pool, 100);
    for (let i = 0; i < 4; i += 1) await producer.manager.enqueue('test.noop', {});
    const worker = startInTerminal(['worker', '--engine', 'pgboss', ...common()]);
    await pollUntil('the jobs done', async () => (await countWhere(pool, `status = 'COMPLETED'`)) === 4);
    await pollUntil('the summary to count them', async () => totals(worker.output())['test.noop']?.done === 4, { timeoutMs: 25_000 });
    expect(worker.output()).toMatch(/ last \d+s: test\.noop \d done, 0 failed, \d running/);
    worker.type('\x03');
    expect((await worker.exited).code).toBe(0);
  }, 60_000);

  it('piped: nothing unless CUTOVER_WORKER_SUMMARY_MS asks for it; a bad value is a usage error', async () => {
    await setPercent(pool, 100);
    const work = async (env: NodeJS.ProcessEnv, done: number) => {
      for (let i = 0; i < 2; i += 1) await producer.manager.enqueue('test.noop', {});
      const worker = startCli(['worker', '--engine', 'pgboss', ...common()], env);
      await pollUntil('the jobs done', async () => (await countWhere(pool, `status = 'COMPLETED'`)) === done);
      return worker;
    };
    const asked = await work({ CUTOVER_WORKER_SUMMARY_MS: '200' }, 2);
    await pollUntil('a summary line, then idle', async () => / test\.noop \d done, 0 failed, /.test(asked.stderr()) && /idle: /.test(asked.stderr()));
    asked.kill('SIGTERM');
    expect((await asked.exited).code).toBe(0);

    const quiet = await work({}, 4);
    // A summary that was on, whatever its interval, would print its last line on stop.
    quiet.kill('SIGTERM');
    expect((await quiet.exited).code).toBe(0);
    expect(quiet.stderr()).not.toMatch(/ done, \d+ failed|idle: /);

    const bad = await runCli(['worker', '--engine', 'legacy', ...common()], { env: { CUTOVER_WORKER_SUMMARY_MS: '10s' } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^cutover: CUTOVER_WORKER_SUMMARY_MS must be an integer of milliseconds from 0 \(off\)/);
  });
});

describe('migrate asks on a terminal', () => {
  beforeEach(async () => {
    await addLegacyJobs(pool, 'test.noop', Array.from({ length: 5 }, () => ({})));
    await addLegacyJobs(pool, 'test.record', [{ tag: 'a' }, { tag: 'b' }, { tag: 'c' }]);
    await addLegacyJobs(pool, 'no.such.type', [{}]);
  });

  it('shows what would move per type; no (or Ctrl-C) exits 2 with nothing moved', async () => {
    const refused = await terminal(['migrate'], { answers: ['n'] });
    expect(refused.code, refused.output).toBe(2);
    expect(refused.output).toMatch(/legacy PENDING jobs migrate would move to pg-boss:\n\s+type\s+jobs\n\s+test\.noop\s+5\n\s+test\.record\s+3\n\s+plus 1 of types not in the registry/);
    expect(refused.output).toMatch(/move 8 job\(s\) to pg-boss and quarantine 1\? \[y\/N\] n/);
    expect(refused.output).toMatch(/cutover: migrate not confirmed; nothing changed/);

    const session = startInTerminal(['migrate', '--type', 'test.record', ...common()]);
    await session.waitFor(/move 3 job\(s\) to pg-boss\? \[y\/N\] $/);
    session.type('\x03');
    const interrupted = await session.exited;
    expect(interrupted.code, interrupted.output).toBe(2);

    expect(await countWhere(pool, `engine = 'PGBOSS'`)).toBe(0);
    expect((await pool.query(`SELECT 1 FROM "MigrationQuarantine"`)).rowCount).toBe(0);
    expect(await auditCount('migrate')).toBe(0);
  });

  it('yes moves them; --yes and a pipe do not ask', async () => {
    const agreed = await terminal(['migrate', '--type', 'test.noop'], { answers: ['y'] });
    expect(agreed.code, agreed.output).toBe(0);
    expect(agreed.output).toMatch(/^moved 5 job\(s\) to pg-boss/m);
    expect(await countWhere(pool, `engine = 'PGBOSS'`)).toBe(5);

    const told = await terminal(['migrate', '--type', 'test.record', '--yes']);
    expect(told.code, told.output).toBe(0);
    expect(told.output).not.toMatch(/\[y\/N\]/);
    expect(await countWhere(pool, `engine = 'PGBOSS'`)).toBe(8);

    // Scripts, the runbook and the chaos harness run migrate without a terminal: it moves, as it always has.
    const piped = await cli('migrate', '--json');
    expect(piped.code, piped.stderr).toBe(0);
    expect(JSON.parse(piped.stdout)).toMatchObject({ moved: 0, quarantined: 1 });
  });

  it('asks nothing when nothing would move', async () => {
    const nothing = await terminal(['migrate', '--type', 'test.sleep']);
    expect(nothing.code, nothing.output).toBe(0);
    expect(nothing.output).not.toMatch(/\[y\/N\]/);
    expect(nothing.output).toMatch(/^moved 0 job\(s\)/m);
  });
});

describe('the migrate progress bar', () => {
  it('ends full at what --limit moves, not at the whole backlog', async () => {
    await addLegacyJobs(pool, 'test.noop', Array.from({ length: 120 }, () => ({})));
    const run = await terminal(['migrate', '--limit', '60', '--batch', '20', '--yes']);
    expect(run.code, run.output).toBe(0);
    const bars = [...run.output.matchAll(/migrate \[[^\]]*\] (\d+)\/(\d+) rows/g)].map((match) => [Number(match[1]), Number(match[2])]);
    expect(bars.length, run.output).toBeGreaterThan(0);
    expect(bars.every(([, total]) => total === 60), run.output).toBe(true);
    expect(bars.at(-1)).toEqual([60, 60]);
    expect(run.output).toMatch(/^moved 60 job\(s\) to pg-boss .*60 left for a later run by --limit 60/m);
  });
});

describe('unfiltered dlq retry asks on a terminal', () => {
  async function deadLetters(count: number): Promise<void> {
    await setPercent(pool, 100);
    for (let i = 0; i < count; i += 1) await producer.manager.enqueue('test.nonretryable', {});
    await withBossWorker({ url: database.url, pool, registry: fixture.registry }, () =>
      pollUntil('dead letters', async () => (await countWhere(pool, `status = 'FAILED'`)) === count),
    );
  }
  const listed = async () => (JSON.parse((await cli('dlq', 'list', '--json')).stdout) as { deadLetters: unknown[] }).deadLetters.length;

  it('no exits 2 and sends nothing back; yes sends them; --type does not ask', async () => {
    await deadLetters(2);
    const refused = await terminal(['dlq', 'retry'], { answers: ['n'] });
    expect(refused.code, refused.output).toBe(2);
    expect(refused.output).toMatch(/dead-lettered jobs dlq retry would send back to their queue, to run again:\n\s+type\s+jobs\n\s+test\.nonretryable\s+2\n/);
    expect(refused.output).toMatch(/send 2 dead-lettered job\(s\) back to their queue\? \[y\/N\] n/);
    expect(refused.output).toMatch(/cutover: dlq retry not confirmed; nothing changed/);
    expect(await listed()).toBe(2);
    expect(await auditCount('dlq.retry')).toBe(0);

    const agreed = await terminal(['dlq', 'retry'], { answers: ['y'] });
    expect(agreed.code, agreed.output).toBe(0);
    expect(agreed.output).toMatch(/^sent 2 job\(s\) back to their queue/m);
    expect(await listed()).toBe(0);
  });

  it('with --type it does not ask', async () => {
    await deadLetters(1);
    const typed = await terminal(['dlq', 'retry', '--type', 'test.nonretryable']);
    expect(typed.code, typed.output).toBe(0);
    expect(typed.output).not.toMatch(/\[y\/N\]/);
    expect(typed.output).toMatch(/^sent 1 job\(s\) back to their queue/m);
  });
});

describe('a config copied outside the repository', () => {
  it.each([
    ['cutover.config.mjs', `import { defineConfig } from 'cutover';\nexport default defineConfig({});\n`],
    ['cutover.config.ts', `import { defineConfig } from 'cutover';\nexport default defineConfig({});\n`],
    ['cutover.config.js', `import 'cutover/jobs';\nexport default {};\n`],
  ])('%s: says to install cutover next to it, from its packed tarball, exit 2', async (name, source) => {
    const dir = await mkdtemp(join(scratch, 'config-'));
    await writeFile(join(dir, 'package.json'), '{"type":"module"}\n');
    await writeFile(join(dir, name), source);
    const result = await runCli(['status', '--database-url', database.url], { cwd: dir });
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(`cutover: cannot load ${join(dir, name)}: it imports 'cutover', which is not installed where the config is: run \`npm install /path/to/cutover-<version>.tgz\` in ${dir} (cutover is not on the npm registry: \`npm pack\` in a cutover checkout makes the tarball)`);
  });
});
