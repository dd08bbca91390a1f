import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/support/log.js';
import { planSchema } from '../../src/plans/plan.js';
import { startPlan, type PlanContext } from '../../src/plans/plan-runner.js';
import { runCli } from '../helpers/cli.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { quietLog } from '../helpers/engines.js';
import { fixtureRegistry } from '../helpers/jobs.js';
import { killTerminals, runInTerminal } from '../helpers/terminal.js';

// Logs as the reader needs them: a person at a terminal reads short, coloured lines; a program
// reading a pipe (or anyone asking --json) gets JSON lines on stderr. Secrets are redacted
// before either is written.

const fixture = useEngineFixture({ ttlMs: 200 });
let context: PlanContext;
beforeEach(() => {
  context = { pool: fixture.pool, databaseUrl: fixture.database.url, registry: fixture.registry, log: quietLog, actor: 'test', boss: fixture.producer.boss, settleMs: 200 };
});
afterEach(killTerminals);

/** An actor named like a connection string: `plan abort` logs it in its warning's reason. */
const ACTOR = 'postgresql://admin:s3cretpw@db.example.com/app';
const SECRET = 's3cretpw';

/** `plan abort` of a running plan: it logs a warning ("aborting the rollout plan") before rolling back. */
async function abortArgs(): Promise<string[]> {
  await startPlan(context, planSchema.parse({ name: 'held', jobType: 'test.noop', steps: [{ setWeight: 10 }, { pause: {} }] }));
  return ['plan', 'abort', '--type', 'test.noop', '--yes', '--actor', ACTOR, '--registry', fixtureRegistry, '--database-url', fixture.database.url];
}

const warningLine = (output: string) => output.split('\n').find((line) => line.includes('aborting the rollout plan'));

describe('logs on a terminal', () => {
  it('are short readable lines: time, level, message, fields; secrets redacted', async () => {
    const { code, output } = await runInTerminal(await abortArgs());
    expect(code, output).toBe(0);
    const line = warningLine(output);
    expect(line, output).toMatch(/^\[\d{2}:\d{2}:\d{2}\] WARN: aborting the rollout plan: rolling back \{"plan":"held","reason":"aborted by postgresql:\/\/admin:\*\*\*@db\.example\.com\/app"\}$/);
    expect(line).not.toContain(SECRET);
    // Nothing on the terminal is a raw JSON log line.
    expect(output).not.toMatch(/^\{"level"/m);
  });

  it('stay JSON lines with --json, as the rest of the output is for a program', async () => {
    const { code, output } = await runInTerminal([...(await abortArgs()), '--json']);
    expect(code, output).toBe(0);
    const line = warningLine(output)!;
    expect(JSON.parse(line)).toMatchObject({ level: 'warn', msg: 'aborting the rollout plan: rolling back', plan: 'held', reason: 'aborted by postgresql://admin:***@db.example.com/app' });
  });
});

describe('logs through a pipe', () => {
  it('are JSON lines on stderr, nothing else there', async () => {
    const { code, stderr } = await runCli(await abortArgs());
    expect(code, stderr).toBe(0);
    const lines = stderr.trimEnd().split('\n');
    const records = lines.map((line) => JSON.parse(line) as { level: string; msg: string; reason?: string });
    expect(records).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'aborting the rollout plan: rolling back', reason: 'aborted by postgresql://admin:***@db.example.com/app' }));
    expect(stderr).not.toContain(SECRET);
  });
});

describe('the readable format', () => {
  function capture(options: Parameters<typeof createLogger>[0]): { lines: () => string[]; log: ReturnType<typeof createLogger> } {
    let text = '';
    const destination = new Writable({
      write(chunk: Buffer, _encoding, done) {
        text += chunk.toString();
        done();
      },
    });
    const log = createLogger({ ...options, destination });
    return { lines: () => text.trimEnd().split('\n'), log };
  }

  it('redacts what the JSON lines redact, in messages, fields and errors', () => {
    const { lines, log } = capture({ pretty: { colorize: false } });
    const cause = new Error('bad URL mysql://root:s3cretpw@h/db');
    log.error({ err: new Error('connect to postgresql://admin:s3cretpw@db/app failed', { cause }), password: 's3cretpw' }, 'could not connect');
    log.warn({ reason: 'host=db password=s3cretpw', nested: { list: ['admin:s3cretpw@db'] } }, 'using %s', 'postgres://a:s3cretpw@b/c');
    const output = lines();
    expect(output).toHaveLength(2);
    expect(output.join('\n')).not.toContain(SECRET);
    // An error is its message (with its causes') on the line, without a stack, unless asked.
    expect(output[0]).toMatch(/^\[\d{2}:\d{2}:\d{2}\] ERROR: could not connect: connect to postgresql:\/\/admin:\*\*\*@db\/app failed: bad URL mysql:\/\/root:\*\*\*@h\/db \{"password":"\[redacted\]"\}$/);
    expect(output[1]).toMatch(/WARN: using postgres:\/\/a:\*\*\*@b\/c \{"reason":"host=db password=\*\*\*","nested":\{"list":\["admin:\*\*\*@db"\]\}\}$/);
  });

  it('shows stacks at debug level (--verbose), and colours when asked', () => {
    const verbose = capture({ pretty: { colorize: false }, level: 'debug' });
    verbose.log.error({ err: new Error('boom at postgres://a:s3cretpw@b/c') }, 'failed');
    const text = verbose.lines().join('\n');
    expect(text).toMatch(/ERROR: failed\s*\n\s+err: \{/);
    expect(text).toMatch(/stack[\s\S]*at /);
    expect(text).not.toContain(SECRET);

    const coloured = capture({ pretty: true });
    coloured.log.warn('look');
    expect(coloured.lines()[0]).toContain('\u001b[');
  });
});
