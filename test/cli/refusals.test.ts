import { mkdtempSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, type Pool } from '../../src/db/pool.js';
import { MAX_PAYLOAD_BYTES, loadRegistry } from '../../src/jobs/registry.js';
import { startBoss } from '../../src/pgboss/boss.js';
import { ensureQueues } from '../../src/pgboss/queues.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { quietLog, setPercent } from '../helpers/engines.js';
import { addLegacyJobs } from '../helpers/jobs.js';
import { runCliInProcess } from '../helpers/cli.js';
import { databaseState, expectRefused, type Refusal } from './refusals.shared.js';

// The bad-input catalogue, part 1: every wrong input an operator can type at 3 a.m.,
// through the built CLI against a database in use (cutover's tables, pg-boss installed with its
// queues, a legacy backlog, a flag at 25 %). Each one exits with the contract's code, says what
// is wrong in one line on stderr, and leaves every table, queue and schema as it was.
// Part 2 (refusals-database.test.ts) covers connection strings and unprepared databases.

let database: TestDatabase;
let pool: Pool;
// Made now, not in beforeAll: the cases below name files in it when they are collected.
const dir = mkdtempSync(join(tmpdir(), 'cutover-bad-input-'));

beforeAll(async () => {
  database = await createTestDatabase();
  pool = createPool(database.url, { max: 2 });
  const boss = await startBoss({ databaseUrl: database.url, log: quietLog, max: 2 });
  await ensureQueues(boss, await loadRegistry(), quietLog);
  await boss.stop({ graceful: false, close: true });
  await addLegacyJobs(pool, 'evaluation.process', Array.from({ length: 5 }, (_, i) => ({ documentId: `d${i}`, agentId: 'a' })));
  await setPercent(pool, 25);

  const files: Record<string, string> = {
    'unknown-field.yaml': 'name: p\nrollback: always\nsteps:\n  - setWeight: 5\n',
    'unknown-step.yaml': 'name: p\nsteps:\n  - setWeight: 5\n  - teleport: { to: 100 }\n',
    'negative-duration.yaml': 'name: p\nsteps:\n  - setWeight: 5\n  - pause: { duration: -10m }\n',
    'unknown-gate.yaml': 'name: p\nsteps:\n  - setWeight: 5\n  - analysis:\n      gates: { maxP99LatencyRatio: 2 }\n',
    'not-a-percent.yaml': 'name: p\nsteps:\n  - setWeight: 150\n',
    // Billion laughs: nine levels of nine aliases each would expand to 9^9 strings.
    'bomb.yaml': [
      'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
      ...'bcdefghi'.split('').map((name, i) => `${name}: &${name} [${Array.from({ length: 9 }, () => `*${'abcdefghi'[i]}`).join(',')}]`),
      'name: bomb',
      'steps: [{ setWeight: 1 }]',
    ].join('\n'),
    'throws.mjs': "throw new Error('cannot reach the vault');\n",
    'bad-name-registry.mjs': [
      "const schema = { '~standard': { version: 1, vendor: 'test', validate: (value) => ({ value }) } };",
      "export default [{ name: \"x'); DROP TABLE \\\"Job\\\"; --\", schema, handler: async () => null, retry: { limit: 0, delaySeconds: 0, backoff: false }, timeoutSeconds: 1, sideEffects: 'none' }];",
    ].join('\n'),
  };
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
});

afterAll(async () => {
  await pool?.end();
  await database?.drop();
  await rm(dir, { recursive: true, force: true });
});

interface Case extends Refusal {
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** Sent on stdin. */
  input?: string;
  /** The case brings its own connection string (or needs none). */
  ownUrl?: boolean;
  /** Refused within this long (a YAML bomb must not be expanded first). */
  withinMs?: number;
}

const payload = '{"documentId":"d1","agentId":"a1"}';
const file = (name: string) => join(dir, name);

const cases: Record<string, Case> = {
  // Percentages.
  'a percentage over 100': { args: ['rollout', 'set', '150'], code: 2, message: /^cutover: percent must be a number from 0 to 100 with at most two decimals, got '150'$/ },
  'a percentage that is not a number': { args: ['rollout', 'set', 'half'], code: 2, message: /percent must be a number from 0 to 100.*got 'half'/ },
  'a percentage NaN': { args: ['rollout', 'set', 'NaN'], code: 2, message: /percent must be a number from 0 to 100.*got 'NaN'/ },
  'an empty percentage': { args: ['rollout', 'set', ''], code: 2, message: /percent must be a number from 0 to 100.*got ''/ },
  'a negative percentage': { args: ['rollout', 'set', '-5'], code: 2, message: /percent must be a number from 0 to 100.*got '-5'/ },
  'a percentage with three decimals': { args: ['rollout', 'set', '12.345'], code: 2, message: /at most two decimals, got '12.345'/ },
  'PGBOSS_ROLLOUT_PERCENTAGE out of range': { args: ['rollout', 'get'], env: { PGBOSS_ROLLOUT_PERCENTAGE: '150' }, code: 2, message: /^cutover: PGBOSS_ROLLOUT_PERCENTAGE must be a number from 0 to 100, got '150'$/ },

  // Job types.
  'enqueue of an unknown job type': { args: ['enqueue', 'evaluation.proces', payload], code: 2, message: /^cutover: unknown job type 'evaluation.proces' \(known: evaluation.process, import.article, notification.send\)$/ },
  'a flag for an unknown job type': { args: ['rollout', 'set', '5', '--type', 'evaluation.proces'], code: 2, message: /unknown job type 'evaluation.proces'/ },
  'migrate of an unknown job type': { args: ['migrate', '--type', 'nope'], code: 2, message: /unknown job type 'nope'/ },
  'a type name carrying SQL': { args: ['enqueue', `x'); DROP TABLE "Job"; --`, '{}'], code: 2, message: /unknown job type 'x'\); DROP TABLE "Job"; --'/ },
  'a --type carrying SQL': { args: ['rollout', 'kill', '--type', `*' OR '1'='1`], code: 2, message: /unknown job type/ },
  'a worker for an unknown type': { args: ['worker', '--engine', 'legacy', '--types', 'evaluation.process,nope'], code: 2, message: /unknown job type 'nope'/ },
  'a registry whose type name carries SQL': { args: ['status', '--registry', file('bad-name-registry.mjs')], code: 2, message: /job registry .*bad-name-registry\.mjs: job name must be 1-100 letters, digits/ },

  // Payloads.
  'a payload failing its schema': { args: ['enqueue', 'evaluation.process', '{"documentId":5,"agentId":"a"}'], code: 2, message: /^cutover: invalid payload for evaluation.process: documentId: / },
  'a payload missing a field': { args: ['enqueue', 'import.article', '{}'], code: 2, message: /invalid payload for import.article: url: / },
  'a payload that is an array': { args: ['enqueue', 'evaluation.process', '[]'], code: 2, message: /invalid payload for evaluation.process/ },
  'a payload that is null': { args: ['enqueue', 'evaluation.process', 'null'], code: 2, message: /invalid payload for evaluation.process/ },
  'a payload over the size limit, on stdin': {
    args: ['enqueue', 'evaluation.process', '-'],
    input: JSON.stringify({ documentId: 'x'.repeat(MAX_PAYLOAD_BYTES), agentId: 'a' }),
    code: 2,
    message: new RegExp(`^cutover: invalid payload for evaluation.process: payload is ${MAX_PAYLOAD_BYTES + 31} bytes of JSON, over the limit of ${MAX_PAYLOAD_BYTES} \\(1 MiB\\); pass a reference`),
  },
  'a payload with a NUL character': { args: ['enqueue', 'evaluation.process', '{"documentId":"a\\u0000b","agentId":"a"}'], code: 2, message: /payload contains a NUL character \(\\u0000\), which Postgres cannot store/ },
  'a payload with half a surrogate pair': { args: ['enqueue', 'evaluation.process', '{"documentId":"\\ud800","agentId":"a"}'], code: 2, message: /payload contains a lone UTF-16 surrogate \(not valid Unicode\), which Postgres cannot store/ },
  'malformed JSON': { args: ['enqueue', 'evaluation.process', '{"documentId":'], code: 2, message: /^cutover: <payload-json> must be JSON: / },
  'an empty payload': { args: ['enqueue', 'evaluation.process', ''], code: 2, message: /<payload-json> is empty/ },
  'a payload file that does not exist': { args: ['enqueue', 'evaluation.process', `@${file('none.json')}`], code: 2, message: /cannot read payload file .*none\.json: ENOENT/ },
  'a routing key with a terminal escape': { args: ['enqueue', 'evaluation.process', payload, '--key', 'user\u001b[2J'], code: 2, message: /^cutover: --key must be one line of printable text: it contains the control character U\+001B at position 5$/ },
  'an actor with a line break': { args: ['rollout', 'set', '5', '--actor', 'alice\nbob'], code: 2, message: /--actor must be one line of printable text: it contains the control character U\+000A/ },
  'a reason with a bidirectional override': { args: ['rollout', 'kill', '--reason', 'ok\u202Egnp.exe'], code: 2, message: /--reason must be one line of printable text: .*U\+202E/ },

  // Plan files.
  'a plan with an unknown field': { args: ['plan', 'start', file('unknown-field.yaml')], code: 2, message: /^cutover: unknown-field.yaml: \(top level\): unknown field 'rollback' \(a plan has name, jobType, steps\)$/ },
  'a plan with an unknown step': { args: ['plan', 'start', file('unknown-step.yaml')], code: 2, message: /^cutover: unknown-step.yaml: steps.1: unknown step 'teleport' \(a step is one of setWeight, pause, analysis\)$/ },
  'a plan with a negative duration': { args: ['plan', 'start', file('negative-duration.yaml')], code: 2, message: /negative-duration.yaml: steps.1.pause.duration: a duration must not be negative, got "-10m"/ },
  'a plan gating on a metric that does not exist': { args: ['plan', 'start', file('unknown-gate.yaml')], code: 2, message: /unknown-gate.yaml: steps.1.analysis.gates: unknown gate 'maxP99LatencyRatio' \(gates has minSamples, maxFailureRateDelta, maxP95LatencyRatio, maxDeadLetters, zeroFindings\)/ },
  'a plan ramping over 100 %': { args: ['plan', 'start', file('not-a-percent.yaml')], code: 2, message: /not-a-percent.yaml: steps.0.setWeight: / },
  'a YAML bomb': { args: ['plan', 'start', file('bomb.yaml')], code: 2, message: /^cutover: bomb.yaml: refused: its YAML aliases expand more than 50 times \(a plan needs none\)$/, withinMs: 5000 },
  'a plan file that does not exist': { args: ['plan', 'start', file('none.yaml')], code: 2, message: /cannot read plan file .*none\.yaml: ENOENT/ },

  // Flags.
  'an unknown flag': { args: ['status', '--frobnicate'], code: 2, message: /^error: unknown option '--frobnicate' \(run with --help for usage\)$/ },
  'conflicting flags': { args: ['init', '--print', '--out', file('x.sql')], code: 2, message: /option '--out <file>' cannot be used with option '--print'/, ownUrl: true },
  'an option of the other engine': { args: ['worker', '--engine', 'pgboss', '--poll-ms', '100'], code: 2, message: /--poll-ms is the legacy runner's poll interval/ },
  'more job processes than the legacy runner runs': { args: ['worker', '--engine', 'legacy', '--concurrency', '21'], code: 2, message: /--concurrency 21: the legacy runner runs each job in a child process of its own, at most 20 at once/ },
  'more jobs at once than a pg-boss worker runs': { args: ['worker', '--engine', 'pgboss', '--concurrency', '501'], code: 2, message: /--concurrency/ },
  'an unknown engine': { args: ['worker', '--engine', 'cron'], code: 2, message: /argument 'cron' is invalid. Allowed choices are legacy, pgboss/ },
  '--limit 0': { args: ['migrate', '--limit', '0'], code: 2, message: /option '--limit <n>' argument '0' is invalid. must be an integer from 1/ },
  'a negative --batch': { args: ['migrate', '--batch', '-5'], code: 2, message: /option '--batch <n>' argument '-5' is invalid/ },
  '--count 0': { args: ['enqueue', 'evaluation.process', payload, '--count', '0'], code: 2, message: /option '--count <n>' argument '0' is invalid/ },
  'a duration that is not one': { args: ['migrate', '--older-than', 'yesterday'], code: 2, message: /argument 'yesterday' is invalid. must be a number with a unit \(500ms, 90s, 30m, 2h, 7d\); a bare number is seconds, got 'yesterday'/ },
  'a negative duration': { args: ['reconcile', '--since', '-1h'], code: 2, message: /argument '-1h' is invalid. must be a number with a unit/ },
  'a job id that is not a UUID': { args: ['dlq', 'list', '--id', '1; DROP TABLE x'], code: 2, message: /--id must be a UUID, got '1; DROP TABLE x'/ },

  // Config files.
  'a config file that throws on import': { args: ['status', '--config', file('throws.mjs')], code: 2, message: /^cutover: cannot load .*throws\.mjs: cannot reach the vault$/ },
  'a config file that does not exist': { args: ['status', '--config', file('none.mjs')], code: 2, message: /--config .*none\.mjs: no such file/ },

  // Destructive commands without a terminal.
  'rollback without --yes and without a terminal': { args: ['rollback'], code: 2, message: /^cutover: refusing to roll back every job type to the legacy runner without a terminal to confirm on; pass --yes$/ },
  'plan abort without an active plan': { args: ['plan', 'abort'], code: 2, message: /no active rollout plan; start one with 'cutover plan start <file>'/ },
};

describe('the bad-input catalogue: refused in one line, nothing written', () => {
  it.each(Object.entries(cases))('%s', async (_name, c) => {
    const before = await databaseState(database.url);
    const started = Date.now();
    const result = await runCliInProcess(c.ownUrl ? c.args : [...c.args, '--database-url', database.url], { ...(c.env ? { env: c.env } : {}), ...(c.input !== undefined ? { input: c.input } : {}) });
    const elapsed = Date.now() - started;
    expectRefused(result, c);
    if (c.withinMs) expect(elapsed).toBeLessThan(c.withinMs);
    expect(await databaseState(database.url)).toEqual(before);
  });

  it(`has at least 30 cases (${Object.keys(cases).length})`, () => {
    expect(Object.keys(cases).length).toBeGreaterThanOrEqual(30);
  });
});
