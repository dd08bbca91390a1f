import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { createPool, type Pool } from '../../src/db/pool.js';
import type { JobRegistry } from '../../src/jobs/registry.js';
import { createLogger, type Logger } from '../../src/support/log.js';
import { Notifier, notifySettings, startNotifier, type NotifierOptions } from '../../src/notify/notify.js';
import { reconcile } from '../../src/reconcile/reconcile.js';
import { roleName, rolesSql, rolesTarget } from '../../src/adopt/roles.js';
import type { Notification, Webhook } from '../../src/notify/webhook.js';
import { abortPlan, advancePlan, runById, startPlan, type PlanContext } from '../../src/plans/plan-runner.js';
import { planSchema } from '../../src/plans/plan.js';
import { deadLetterQueue } from '../../src/pgboss/queues.js';
import { changeFlag, readFlags } from '../../src/state/flags.js';
import { UsageError } from '../../src/support/errors.js';
import { loadConfigFile } from '../../src/config/file.js';
import { runCli } from '../helpers/cli.js';
import type { TestDatabase } from '../helpers/database.js';
import { quietLog, withBossWorker, type Producer } from '../helpers/engines.js';
import { planContextOf, useEngineFixture } from '../helpers/fixture.js';
import { addLegacyJobs, fixtureRegistry } from '../helpers/jobs.js';
import { startCli } from '../helpers/process.js';
import { pollUntil } from '../helpers/wait.js';
import { freePort } from '../../src/support/net.js';

// Notifications (RUNBOOK.md §3): the audit log is the outbox, a separate loop delivers. What a
// receiver gets when a plan aborts, that a receiver which is down never slows the abort, that
// deliveries are retried and land once when it comes back, and that loops in several processes
// never deliver one notification twice, nor skip one whose transaction committed late.

const fixture = useEngineFixture({ ttlMs: 200 });
let database: TestDatabase;
let pool: Pool;
let registry: JobRegistry;
let producer: Producer;
let context: PlanContext;
beforeEach(() => {
  ({ database, pool, registry, producer } = fixture);
  context = planContextOf(fixture);
});

/** The secret parts of a Slack-like webhook URL: in the path and in the query. */
const SECRET_PATH = '/services/T0001/B0001/s3cretpath';
const SECRET_QUERY = '?token=s3cretquery';

interface Received {
  body: Notification & { source?: string; text: string };
  headers: IncomingHttpHeaders;
}

interface Receiver {
  url: string;
  port: number;
  received: Received[];
  /** Requests accepted and not answered (mode 'hang'). */
  open: number;
  close(): Promise<void>;
}

/**
 * A webhook receiver on 127.0.0.1: 'ok' answers 200, 'fail' 500, 'hang' never answers. `port`
 * reuses a port (the receiver coming back); `delayMs` slows each answer, to widen races.
 */
async function startReceiver(options: { port?: number; mode?: 'ok' | 'fail' | 'hang'; delayMs?: number } = {}): Promise<Receiver> {
  const received: Received[] = [];
  const hanging: ServerResponse[] = [];
  const server: Server = createServer((request, response) => {
    let data = '';
    request.on('data', (chunk: Buffer) => (data += chunk.toString()));
    request.on('end', () => {
      if (options.mode === 'hang') {
        hanging.push(response);
        return;
      }
      if (options.mode === 'fail') {
        response.writeHead(500).end('down for maintenance');
        return;
      }
      received.push({ body: JSON.parse(data) as Received['body'], headers: request.headers });
      setTimeout(() => response.writeHead(200).end('ok'), options.delayMs ?? 0);
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}${SECRET_PATH}${SECRET_QUERY}`,
    port,
    received,
    get open() {
      return hanging.length;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const urlAt = (port: number) => `http://127.0.0.1:${port}${SECRET_PATH}${SECRET_QUERY}`;
const webhookAt = (url: string, format: Webhook['format'] = 'json'): Webhook => ({ url: new URL(url), format, timeoutMs: 10_000 });

/** Every JSON line a logger wrote. */
function capturedLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  return { log: createLogger({ level: 'info', destination }), lines };
}

function notifier(webhook: Webhook, options: Partial<NotifierOptions> = {}): Notifier {
  return new Notifier({ pool, webhook, log: quietLog, retryBaseMs: 50, retryMaxMs: 200, ...options });
}

/** Rounds of `loop` until `done`: the loop's own work, driven step by step. */
async function roundsUntil(what: string, loop: Notifier, done: () => Promise<boolean> | boolean): Promise<void> {
  await pollUntil(what, async () => {
    await loop.runOnce();
    return done();
  });
}

const kinds = (receiver: Receiver) => receiver.received.map((r) => r.body.kind);
const ids = (receiver: Receiver) => receiver.received.map((r) => r.body.id);

async function deliveries(): Promise<{ key: string; kind: string; attempts: number; lastError: string | null; deliveredAt: Date | null; gaveUpAt: Date | null }[]> {
  return (await pool.query(`SELECT key, kind, attempts, "lastError", "deliveredAt", "gaveUpAt" FROM "NotificationDelivery" ORDER BY id`)).rows;
}

const kill = (jobType: string, killSwitch = true) => changeFlag(pool, { jobType, killSwitch }, { actor: 'alice', action: killSwitch ? 'flag.kill' : 'flag.unkill', reason: 'on-call drill' });

describe('notifications of a plan that aborts', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cutover-notify-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  it('reach the webhook from plan run when a gate fails for real: the ramp, the kill switch, the abort, the rollback, the dead letters', async () => {
    const receiver = await startReceiver();
    try {
      // Finished legacy jobs: the baseline pg-boss is judged against.
      await pool.query(
        `INSERT INTO "Job" (id, type, payload, status, attempts, "maxAttempts", "createdAt", "updatedAt", "startedAt", "completedAt")
         SELECT gen_random_uuid(), 'test.fail-on-pgboss', '{"ms": 0}', 'COMPLETED', 1, 1, (now() AT TIME ZONE 'UTC') - interval '10 minutes',
                now() AT TIME ZONE 'UTC', (now() AT TIME ZONE 'UTC') - interval '10 minutes', (now() AT TIME ZONE 'UTC') - interval '9 minutes'
           FROM generate_series(1, 40)`,
      );
      const file = join(dir, 'doomed.yaml');
      await writeFile(
        file,
        stringify({
          name: 'doomed',
          jobType: 'test.fail-on-pgboss',
          steps: [{ setWeight: 100 }, { analysis: { interval: '1s', count: 30, gates: { minSamples: 5, maxDeadLetters: 0 } } }, { setWeight: 100 }],
        }),
      );
      const controller = startCli(['plan', 'run', file, '--tick-ms', '100', '--actor', 'ci', '--registry', fixtureRegistry, '--database-url', database.url], {
        CUTOVER_WEBHOOK_URL: receiver.url,
        CUTOVER_WEBHOOK_DLQ_THRESHOLD: '5',
        CUTOVER_LOG_LEVEL: 'info',
      });
      const exit = await withBossWorker({ url: database.url, pool, registry }, async () => {
        await pollUntil('the weight to be set', async () => (await readFlags(pool)).get('test.fail-on-pgboss')?.basisPoints === 10_000);
        producer.flags.invalidate();
        await producer.manager.enqueueMany('test.fail-on-pgboss', Array.from({ length: 40 }, () => ({ payload: { ms: 50 } })));
        return controller.exited;
      }, ['test.fail-on-pgboss']);
      expect(exit.code, controller.stderr()).toBe(1);
      expect(controller.stderr()).toMatch(/plan aborted: gate failed: maxDeadLetters/);

      // Delivered by the time the controller exited: its loop ran beside it and drained at the end.
      expect(kinds(receiver)).toEqual(expect.arrayContaining(['plan.start', 'plan.setWeight', 'plan.step', 'flag.kill', 'plan.aborted', 'rollback', 'dlq.threshold']));
      expect(new Set(ids(receiver)).size).toBe(receiver.received.length);
      const aborted = receiver.received.find((r) => r.body.kind === 'plan.aborted')!;
      expect(aborted.body).toMatchObject({
        source: 'cutover',
        id: expect.stringMatching(/^event:\d+$/),
        severity: 'critical',
        jobType: 'test.fail-on-pgboss',
        actor: 'ci',
        reason: expect.stringMatching(/^gate failed: maxDeadLetters/),
        text: expect.stringMatching(/^GATE FAILED: plan for test\.fail-on-pgboss aborted at step 2 and rolled back to legacy \(gate failed: maxDeadLetters/),
      });
      expect(aborted.headers['x-cutover-notification']).toBe(aborted.body.id);
      expect(receiver.received.find((r) => r.body.kind === 'flag.kill')?.body.text).toMatch(/^kill switch ON for test\.fail-on-pgboss: every new job goes to legacy \(plan doomed aborted: gate failed/);
      expect(receiver.received.find((r) => r.body.kind === 'plan.setWeight')?.body.text).toBe('test.fail-on-pgboss: 0 % → 100 % of new jobs go to pg-boss (plan doomed step 1)');
      expect(receiver.received.find((r) => r.body.kind === 'dlq.threshold')?.body).toMatchObject({ jobType: 'test.fail-on-pgboss', details: { queue: 'test.fail-on-pgboss.dlq', threshold: 5 } });
      // In order: the abort after the ramp, the rollback after the abort.
      const order = kinds(receiver);
      expect(order.indexOf('plan.setWeight')).toBeLessThan(order.indexOf('plan.aborted'));
      expect(order.indexOf('plan.aborted')).toBeLessThan(order.indexOf('rollback'));
      // Each delivery is logged, with the webhook's host and never its secret parts.
      expect(controller.stderr()).toMatch(new RegExp(`"webhook":"127\\.0\\.0\\.1:${receiver.port}".*"msg":"notification delivered"`));
      expect(controller.stderr()).not.toMatch(/s3cret/);
    } finally {
      await receiver.close();
    }
  }, 90_000);

  it("in Slack's shape on request", async () => {
    const receiver = await startReceiver();
    try {
      await kill('test.noop');
      await roundsUntil('the kill switch to be told', notifier(webhookAt(receiver.url, 'slack')), () => receiver.received.length === 1);
      expect(receiver.received[0]!.body).toEqual({ text: expect.stringMatching(/^:rotating_light: \*cutover\*: kill switch ON for test\.noop: every new job goes to legacy \(on-call drill\)\n_by alice · \d{4}-/) });
    } finally {
      await receiver.close();
    }
  });
});

describe('a receiver that is down', () => {
  const heldPlan = (jobType: string) => planSchema.parse({ name: `held-${jobType}`, jobType, steps: [{ setWeight: 50 }, { pause: {} }, { setWeight: 100 }] });

  /** A plan ramped to 50 % and waiting at its pause, aborted: how long the abort took. */
  async function timedAbort(jobType: string): Promise<number> {
    const run = await advancePlan(context, await startPlan(context, heldPlan(jobType)));
    expect(run.run).toMatchObject({ state: 'running', currentStep: 1 });
    const started = performance.now();
    const aborted = await abortPlan(context, await runById(pool, run.run.id), 'operator');
    expect(aborted.event).toBe('aborted');
    return performance.now() - started;
  }

  it('does not slow the abort: connection refused or never answering, against the same abort with no webhook', async () => {
    await timedAbort('test.record-slow'); // warms up the code paths and connections; not measured
    const baseline = await timedAbort('test.noop');

    // The loops share the abort's own pool: a request in flight holds no connection.
    const refused = startNotifier({ pool, webhook: webhookAt(urlAt(await freePort())), log: quietLog, pollMs: 20, retryBaseMs: 50 });
    const silent = await startReceiver({ mode: 'hang' });
    // A request that would hang for 30 s: an abort that waited on it could not go unnoticed.
    const hanging = startNotifier({ pool, webhook: { ...webhookAt(silent.url), timeoutMs: 30_000 }, log: quietLog, pollMs: 20 });
    try {
      // Both loops are busy before the abort starts: one retrying, one waiting on an answer.
      await pollUntil('a refused attempt and an unanswered one', async () => silent.open > 0 && (await deliveries()).some((d) => d.attempts > 0 && d.lastError !== null));
      const whileDown = await timedAbort('test.sleep');
      // Room for a loaded machine's noise, and far below the 30 s an abort waiting on the webhook would take.
      expect(whileDown).toBeLessThan(baseline * 3 + 1000);
      expect((await readFlags(pool)).get('test.sleep')?.killSwitch).toBe(true);
      // The abort's events are waiting for the receiver, none delivered.
      const { rows } = await pool.query(`SELECT kind FROM "NotificationDelivery" WHERE "jobType" = 'test.sleep' AND "deliveredAt" IS NULL`);
      expect(rows.map((r: { kind: string }) => r.kind)).toEqual(expect.arrayContaining(['flag.kill', 'plan.aborted']));
    } finally {
      await Promise.all([refused.stop({ flushMs: 0 }), hanging.stop({ flushMs: 0 })]);
      await silent.close();
    }
  });

  it('gets each notification retried with backoff, then delivered once when it comes back; the URL never reaches a log', async () => {
    const port = await freePort();
    const { log, lines } = capturedLog();
    const loop = notifier(webhookAt(urlAt(port)), { log });
    await kill('test.noop');
    await roundsUntil('three refused attempts', loop, async () => ((await deliveries())[0]?.attempts ?? 0) >= 3);
    const failing = (await deliveries())[0]!;
    expect(failing).toMatchObject({ key: expect.stringMatching(/^event:/), kind: 'flag.kill', deliveredAt: null, gaveUpAt: null, lastError: expect.stringMatching(/ECONNREFUSED/) });

    // Then a receiver that fails: 500 is retried too.
    const failing500 = await startReceiver({ port, mode: 'fail' });
    await roundsUntil('a 500', loop, async () => (await deliveries())[0]?.lastError === 'HTTP 500 Internal Server Error');
    await failing500.close();

    const receiver = await startReceiver({ port });
    try {
      await roundsUntil('the delivery', loop, () => receiver.received.length > 0);
      // More rounds, and a second loop: nothing is sent again.
      const other = notifier(webhookAt(urlAt(port)));
      for (let i = 0; i < 5; i += 1) await Promise.all([loop.runOnce(), other.runOnce()]);
      expect(receiver.received.map((r) => r.body.kind)).toEqual(['flag.kill']);
      const [row] = await deliveries();
      expect(row).toMatchObject({ deliveredAt: expect.any(Date), lastError: null });
      expect(row!.attempts).toBeGreaterThanOrEqual(5);
    } finally {
      await receiver.close();
    }

    const logged = lines.map((line) => JSON.parse(line) as { msg: string; webhook?: string; level: string });
    expect(logged.filter((l) => l.msg === 'notification not delivered; retrying with backoff').length).toBeGreaterThanOrEqual(4);
    expect(logged.filter((l) => l.msg === 'notification delivered')).toHaveLength(1);
    expect(logged.every((l) => l.webhook === undefined || l.webhook === `127.0.0.1:${port}`)).toBe(true);
    expect(lines.join('')).not.toMatch(/s3cret|services\/T0001/);
    expect(JSON.stringify(await deliveries())).not.toMatch(/s3cret/);
  });

  it('that refuses the request itself (a 4xx) is not retried: the notification is given up, logged as an error', async () => {
    const server = createServer((_request, response) => response.writeHead(404).end('no_service'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { log, lines } = capturedLog();
      const loop = notifier(webhookAt(`http://127.0.0.1:${(server.address() as AddressInfo).port}${SECRET_PATH}`), { log });
      await kill('test.noop');
      await roundsUntil('the refusal', loop, async () => (await deliveries())[0]?.gaveUpAt != null);
      expect((await deliveries())[0]).toMatchObject({ attempts: 1, lastError: 'HTTP 404 Not Found', deliveredAt: null });
      expect(lines.map((line) => JSON.parse(line) as { level: string; msg: string })).toContainEqual(expect.objectContaining({ level: 'error', msg: 'notification refused by the receiver; not retried' }));
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('several delivery loops', () => {
  it('never deliver a notification twice, and skip none, while events keep coming', async () => {
    const receiver = await startReceiver({ delayMs: 15 });
    const pools = [createPool(database.url, { max: 2 }), createPool(database.url, { max: 2 })];
    const loops = pools.map((own) => startNotifier({ pool: own, webhook: webhookAt(receiver.url), log: quietLog, pollMs: 10 }));
    try {
      const types = ['test.noop', 'test.sleep', 'test.record', 'test.record-slow'];
      // 4 types × 6 switches, written concurrently, so ids commit out of order.
      await Promise.all(types.map(async (type) => {
        for (let i = 0; i < 6; i += 1) await kill(type, i % 2 === 0);
      }));
      await pollUntil('24 notifications', async () => receiver.received.length >= 24, { timeoutMs: 30_000 });
      await Promise.all(loops.map((loop) => loop.stop()));
      expect(receiver.received).toHaveLength(24);
      expect(new Set(ids(receiver)).size).toBe(24);
      const rows = await deliveries();
      expect(rows).toHaveLength(24);
      expect(rows.every((row) => row.deliveredAt !== null && row.attempts === 1)).toBe(true);
    } finally {
      await Promise.all(loops.map((loop) => loop.stop({ flushMs: 0 })));
      await Promise.all(pools.map((own) => own.end()));
      await receiver.close();
    }
  });

  it('deliver an event whose transaction committed after a later one was already delivered', async () => {
    const receiver = await startReceiver();
    const loop = notifier(webhookAt(receiver.url));
    const late = await pool.connect();
    try {
      await late.query('BEGIN');
      await changeFlag(pool, { jobType: 'test.noop', killSwitch: true }, { actor: 'slow', action: 'flag.kill', reason: 'committed late' }, late);
      await kill('test.sleep');
      await roundsUntil('the later event', loop, () => receiver.received.length === 1);
      for (let i = 0; i < 3; i += 1) await loop.runOnce();
      await late.query('COMMIT');
      await roundsUntil('the event that committed late', loop, () => receiver.received.length === 2);
      expect(receiver.received.map((r) => [r.body.jobType, r.body.reason])).toEqual([
        ['test.sleep', 'on-call drill'],
        ['test.noop', 'committed late'],
      ]);
      // The later one's id is higher: ids were taken in one order and committed in the other.
      const [later, earlier] = receiver.received.map((r) => Number(r.body.id.split(':')[1]));
      expect(earlier).toBeLessThan(later!);
    } finally {
      await late.query('ROLLBACK').catch(() => undefined);
      late.release();
      await receiver.close();
    }
  });
});

describe('what else is told', () => {
  it('reconcile runs with findings, and dead letters at each multiple of the threshold', async () => {
    const receiver = await startReceiver();
    try {
      const loop = notifier(webhookAt(receiver.url), { dlqThreshold: 2, deadLetterEveryMs: 0 });
      // A lost job: the row says pg-boss owns it, pg-boss has none.
      const [id] = await addLegacyJobs(pool, 'test.noop', [{}]);
      await pool.query(`UPDATE "Job" SET engine = 'PGBOSS', "pgbossJobId" = id, "updatedAt" = (now() AT TIME ZONE 'UTC') - interval '5 minutes' WHERE id = $1`, [id]);
      await reconcile({ pool, registry, log: quietLog, actor: 'test', graceSeconds: 1, types: ['test.noop'] });
      await roundsUntil('the reconcile findings', loop, () => receiver.received.length === 1);
      expect(receiver.received[0]!.body).toMatchObject({ kind: 'reconcile.findings', severity: 'warning', jobType: 'test.noop', details: { findings: 1, counts: { lost: 1 } } });
      expect(receiver.received[0]!.body.text).toBe("reconcile found 1 discrepancy (lost 1): 'cutover reconcile --fix' repairs what is safe");

      const letters = async (n: number) => {
        for (let i = 0; i < n; i += 1) await producer.boss.send(deadLetterQueue('test.noop'), { n: i });
      };
      await letters(1);
      for (let i = 0; i < 3; i += 1) await loop.runOnce();
      expect(receiver.received).toHaveLength(1);
      await letters(2); // 3: past 2
      await roundsUntil('the threshold', loop, () => receiver.received.length === 2);
      await letters(1); // 4: the next multiple
      await roundsUntil('the next multiple', loop, () => receiver.received.length === 3);
      for (let i = 0; i < 3; i += 1) await loop.runOnce();
      expect(receiver.received.slice(1).map((r) => [r.body.kind, r.body.details.count, r.body.text])).toEqual([
        ['dlq.threshold', 3, "test.noop: 3 dead letters (threshold 2): 'cutover dlq list --type test.noop' shows them"],
        ['dlq.threshold', 4, "test.noop: 4 dead letters (threshold 2): 'cutover dlq list --type test.noop' shows them"],
      ]);
    } finally {
      await receiver.close();
    }
  });

  it('runs under the legacy runner\'s and the pg-boss worker\'s grants (RUNBOOK.md §8)', async () => {
    const prefix = `n${randomBytes(4).toString('hex')}_`;
    const password = `pw-${randomBytes(8).toString('hex')}`;
    const admin = new pg.Client({ connectionString: database.url });
    await admin.connect();
    const logins = (['legacy-runner', 'pgboss-worker'] as const).map((component) => ({ component, login: `${prefix}${component.replace('-', '')}_login` }));
    const receiver = await startReceiver();
    try {
      await admin.query(rolesSql(rolesTarget(undefined), prefix));
      for (const { component, login } of logins) await admin.query(`CREATE ROLE ${login} LOGIN PASSWORD '${password}' IN ROLE ${roleName(component, prefix)}`);
      for (const [index, { login }] of logins.entries()) {
        const url = new URL(database.url);
        url.username = login;
        url.password = password;
        const own = createPool(url.toString(), { max: 1 });
        try {
          await kill('test.noop', index % 2 === 0);
          const loop = new Notifier({ pool: own, webhook: webhookAt(receiver.url), log: quietLog, deadLetterEveryMs: 0 });
          await roundsUntil(`a delivery by ${login}`, loop, () => receiver.received.length === index + 1);
        } finally {
          await own.end();
        }
      }
      expect(kinds(receiver)).toEqual(['flag.kill', 'flag.unkill']);
    } finally {
      await receiver.close();
      for (const { component, login } of logins) {
        await admin.query(`DROP OWNED BY ${login}, ${roleName(component, prefix)}`).catch(() => undefined);
        await admin.query(`DROP ROLE IF EXISTS ${login}`);
      }
      for (const component of ['producer', 'legacy-runner', 'pgboss-worker', 'operator', 'dashboard'] as const) {
        await admin.query(`DROP OWNED BY ${roleName(component, prefix)}`).catch(() => undefined);
        await admin.query(`DROP ROLE IF EXISTS ${roleName(component, prefix)}`);
      }
      await admin.end();
    }
  });
});

describe('configuration and commands', () => {
  it('takes the URL from CUTOVER_WEBHOOK_URL or the config file, and never echoes a rejected one', () => {
    expect(notifySettings({}, {})).toBeUndefined();
    expect(notifySettings({ CUTOVER_WEBHOOK_URL: 'https://hooks.slack.com/services/T/B/x' })).toMatchObject({ webhook: { format: 'slack' }, dlqThreshold: 10 });
    expect(notifySettings({ CUTOVER_WEBHOOK_URL: 'https://example.com/hook', CUTOVER_WEBHOOK_DLQ_THRESHOLD: '3' }, { webhook: 'https://other.example/x', format: 'slack', dlqThreshold: 7 })).toMatchObject({
      webhook: { url: new URL('https://example.com/hook'), format: 'slack' },
      dlqThreshold: 3,
    });
    expect(notifySettings({}, { webhook: 'https://example.com/x' })).toMatchObject({ webhook: { format: 'json' }, dlqThreshold: 10 });
    for (const value of ['ftp://user:s3cret@host/x', 'not a url s3cret', 'hooks.slack.com/services/s3cret']) {
      const attempt = () => notifySettings({ CUTOVER_WEBHOOK_URL: value });
      expect(attempt).toThrow(UsageError);
      expect(attempt).toThrow(/^CUTOVER_WEBHOOK_URL must be an http:\/\/ or https:\/\/ URL, got /);
      expect(attempt).not.toThrow(/s3cret/);
    }
    expect(() => notifySettings({ CUTOVER_WEBHOOK_URL: 'https://example.com/x', CUTOVER_WEBHOOK_FORMAT: 'xml' })).toThrow("CUTOVER_WEBHOOK_FORMAT must be 'json' or 'slack', got 'xml'");
  });

  it('reads notifications from cutover.config, checked for shape without showing the URL', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cutover-notify-config-'));
    try {
      const write = async (notifications: unknown) => {
        const file = join(dir, `c${randomBytes(3).toString('hex')}.mjs`);
        await writeFile(file, `export default { notifications: ${JSON.stringify(notifications)} };\n`);
        return file;
      };
      const good = await loadConfigFile(await write({ webhook: 'https://hooks.example/s3cret', format: 'slack', dlqThreshold: 3 }));
      expect(notifySettings({}, good.notifications)).toMatchObject({ webhook: { url: new URL('https://hooks.example/s3cret'), format: 'slack' }, dlqThreshold: 3 });
      await expect(loadConfigFile(await write({ webhook: 42 }))).rejects.toThrow(/notifications\.webhook: must be a URL \(a string\)/);
      await expect(loadConfigFile(await write({ webhook: 'https://x', channel: '#ops' }))).rejects.toThrow(/notifications: unknown field channel/);
      await expect(loadConfigFile(await write({ dlqThreshold: 0 }))).rejects.toThrow(/notifications\.dlqThreshold: must be a whole number from 1/);
      const bad = await loadConfigFile(await write({ webhook: 'ftp://bot:s3cret@x/y' }));
      expect(() => notifySettings({}, bad.notifications)).toThrow('notifications.webhook (cutover.config) must be an http:// or https:// URL, got a ftp:// URL (the rest is not shown)');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('cutover notify --once delivers what one-shot commands wrote; a worker with a webhook delivers as it runs', async () => {
    const receiver = await startReceiver();
    const env = { CUTOVER_WEBHOOK_URL: receiver.url };
    const common = ['--registry', fixtureRegistry, '--database-url', database.url];
    try {
      const killed = await runCli(['rollout', 'kill', '--type', 'test.noop', '--yes', ...common], { env });
      expect(killed.code, killed.stderr).toBe(0);
      // One-shot commands only write their events (RUNBOOK.md §3).
      expect(receiver.received).toHaveLength(0);
      const once = await runCli(['notify', '--once', '--json', '--database-url', database.url], { env });
      expect(once.code, once.stderr).toBe(0);
      expect(JSON.parse(once.stdout)).toMatchObject({ webhook: `127.0.0.1:${receiver.port}`, delivered: 1, failed: 0, pending: 0 });
      expect(kinds(receiver)).toEqual(['flag.kill']);

      const worker = startCli(['worker', '--engine', 'legacy', '--poll-ms', '100', ...common], env);
      await pollUntil('the worker to announce itself', async () => (await pool.query(`SELECT 1 FROM "WorkerHeartbeat"`)).rowCount);
      const released = await runCli(['rollout', 'unkill', '--type', 'test.noop', '--yes', ...common], { env });
      expect(released.code, released.stderr).toBe(0);
      await pollUntil('the worker to deliver the release', async () => receiver.received.length === 2);
      worker.kill('SIGTERM');
      expect((await worker.exited).code, worker.stderr()).toBe(0);
      expect(kinds(receiver)).toEqual(['flag.kill', 'flag.unkill']);

      const unconfigured = await runCli(['notify', '--once', '--database-url', database.url], { env: { CUTOVER_WEBHOOK_URL: '' } });
      expect(unconfigured.code).toBe(2);
      expect(unconfigured.stderr).toMatch(/^cutover: no webhook configured: set CUTOVER_WEBHOOK_URL/);
      const bad = await runCli(['notify', '--database-url', database.url], { env: { CUTOVER_WEBHOOK_URL: 'ftp://bot:s3cret@hooks.example/s3cret' } });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toBe('cutover: CUTOVER_WEBHOOK_URL must be an http:// or https:// URL, got a ftp:// URL (the rest is not shown)\n');
    } finally {
      await receiver.close();
    }
  });
});

describe('notifications done a week ago', () => {
  it('are pruned by the loop; newer ones, those still to deliver, and those past the cursor, stay', async () => {
    // The cursors first (a loop's first round creates them), then one placed past ids 10..13.
    await notifier(webhookAt(urlAt(await freePort()))).runOnce();
    await pool.query(`UPDATE "NotificationCursor" SET position = 100 WHERE source = 'RolloutEvent'`);
    await pool.query(
      `INSERT INTO "NotificationDelivery" (key, kind, "occurredAt", notification, "deliveredAt", "gaveUpAt", "nextAttemptAt") VALUES
         ('event:10', 'test', now(), '{}', now() - interval '8 days', NULL, now()),
         ('event:11', 'test', now(), '{}', NULL, now() - interval '9 days', now()),
         ('event:12', 'test', now(), '{}', now() - interval '1 day', NULL, now()),
         ('event:13', 'test', now() - interval '8 days', '{}', NULL, NULL, now() + interval '1 hour'),
         ('event:200', 'test', now(), '{}', now() - interval '8 days', NULL, now()),
         ('dlq:test.noop__dlq:10:1', 'test', now(), '{}', now() - interval '8 days', NULL, now())`,
    );
    await notifier(webhookAt(urlAt(await freePort()))).runOnce();
    const keys = (await deliveries()).map((row) => row.key);
    expect(keys).toEqual(expect.arrayContaining(['event:12', 'event:13', 'event:200']));
    expect(keys).not.toContain('event:10');
    expect(keys).not.toContain('event:11');
    expect(keys).not.toContain('dlq:test.noop__dlq:10:1');
  });

  it('are never delivered again, however long a transaction held the cursor back', async () => {
    const receiver = await startReceiver();
    // A long transaction with a transaction id (a migration, a batch job): it holds every
    // snapshot's xmin back, so the cursor may not move past anything read while it runs.
    const long = await pool.connect();
    try {
      await long.query('BEGIN');
      await long.query('SELECT pg_current_xact_id()');
      await kill('test.noop');
      await roundsUntil('the first delivery', notifier(webhookAt(receiver.url)), () => receiver.received.length === 1);
      const { rows: [event] } = await pool.query<{ id: string }>(`SELECT max(id)::text AS id FROM "RolloutEvent"`);
      const position = async () => BigInt((await pool.query<{ p: string }>(`SELECT position::text AS p FROM "NotificationCursor" WHERE source = 'RolloutEvent'`)).rows[0]!.p);
      expect(await position()).toBeLessThan(BigInt(event!.id));

      // A week later, the transaction still open: a loop that starts then prunes first, then reads.
      const aWeekLater = () => pool.query(`UPDATE "NotificationDelivery" SET "deliveredAt" = now() - interval '8 days' WHERE "deliveredAt" IS NOT NULL`);
      await aWeekLater();
      const later = notifier(webhookAt(receiver.url));
      for (let i = 0; i < 3; i += 1) await later.runOnce();
      expect(receiver.received).toHaveLength(1);
      expect((await deliveries()).map((row) => row.key)).toEqual([`event:${event!.id}`]);

      // Once the transaction ends the cursor passes the event, and then its delivery may go.
      await long.query('COMMIT');
      await roundsUntil('the cursor to pass the event', later, async () => (await position()) >= BigInt(event!.id));
      await aWeekLater();
      const latest = notifier(webhookAt(receiver.url));
      for (let i = 0; i < 3; i += 1) await latest.runOnce();
      expect(await deliveries()).toEqual([]);
      expect(receiver.received).toHaveLength(1);
    } finally {
      await long.query('ROLLBACK').catch(() => undefined);
      long.release();
      await receiver.close();
    }
  });
});
