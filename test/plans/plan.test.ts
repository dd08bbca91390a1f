import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { Pool } from '../../src/db/pool.js';
import { type JobRegistry } from '../../src/jobs/registry.js';
import { startBoss } from '../../src/pgboss/boss.js';
import { BossWorker } from '../../src/pgboss/worker.js';
import { readFlags } from '../../src/state/flags.js';
import { planSchema, type Plan } from '../../src/plans/plan.js';
import { advancePlan, runById, runPlan, tick, startPlan, type PlanContext, type TickResult } from '../../src/plans/plan-runner.js';
import type { TestDatabase } from '../helpers/database.js';
import { planContextOf, useEngineFixture } from '../helpers/fixture.js';
import { quietLog, type Producer } from '../helpers/engines.js';
import { runCli, runCliInProcess } from '../helpers/cli.js';
import { countWhere, fixtureRegistry } from '../helpers/jobs.js';
import { startCli } from '../helpers/process.js';
import { pollUntil } from '../helpers/wait.js';

const fixture = useEngineFixture({ ttlMs: 200 });
let database: TestDatabase;
let pool: Pool;
let registry: JobRegistry;
let producer: Producer;
beforeEach(() => ({ database, pool, registry, producer } = fixture));

let context: PlanContext;
beforeEach(() => {
  context = planContextOf(fixture);
});

const plan = (input: unknown): Plan => planSchema.parse(input);

/** Finished legacy jobs from before the plan: the baseline pg-boss is judged against. */
async function legacyBaseline(type: string, count: number): Promise<void> {
  await pool.query(
    `INSERT INTO "Job" (id, type, payload, status, attempts, "maxAttempts", "createdAt", "updatedAt", "startedAt", "completedAt")
     SELECT gen_random_uuid(), $1, '{"ms": 0}', 'COMPLETED', 1, 1,
            (now() AT TIME ZONE 'UTC') - interval '10 minutes', now() AT TIME ZONE 'UTC',
            (now() AT TIME ZONE 'UTC') - interval '10 minutes', (now() AT TIME ZONE 'UTC') - interval '9 minutes'
       FROM generate_series(1, $2)`,
    [type, count],
  );
}

async function withBossWorker<T>(types: string[], concurrency: number, run: () => Promise<T>): Promise<T> {
  const boss = await startBoss({ databaseUrl: database.url, log: quietLog, role: 'worker', superviseIntervalSeconds: 1 });
  const worker = new BossWorker({ boss, pool, registry, log: quietLog, types, concurrency, pollingIntervalSeconds: 0.5 });
  await worker.start();
  try {
    return await run();
  } finally {
    await worker.stop(5000);
  }
}

/** A steady producer while a plan runs. */
function produce(type: string, payload: object, everyMs: number): { stop(): Promise<void> } {
  let running = true;
  const loop = (async () => {
    while (running) {
      await producer.manager.enqueue(type, payload);
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
    },
  };
}

describe('rollout plans', () => {
  it('reaches 100 % when every gate passes', async () => {
    await legacyBaseline('test.noop', 40);
    const ramp = plan({
      name: 'ramp',
      jobType: 'test.noop',
      steps: [{ setWeight: 50 }, { analysis: { interval: '300ms', count: 100, gates: { minSamples: 5, maxP95LatencyRatio: 100 } } }, { setWeight: 100 }],
    });
    const events: TickResult[] = [];
    const run = await withBossWorker(['test.noop'], 4, async () => {
      const traffic = produce('test.noop', {}, 30);
      try {
        return await runPlan(context, ramp, { tickMs: 100, onTick: (r) => events.push(r) });
      } finally {
        await traffic.stop();
      }
    });
    expect(run.state).toBe('completed');
    expect((await readFlags(pool)).get('test.noop')?.basisPoints).toBe(10_000);
    expect(events.some((e) => e.gates?.status === 'pass')).toBe(true);
    const { rows } = await pool.query<{ action: string }>(`SELECT action FROM "RolloutEvent" WHERE action LIKE 'plan.%' ORDER BY id`);
    expect(rows.map((r) => r.action)).toEqual(['plan.start', 'plan.setWeight', 'plan.step', 'plan.step', 'plan.setWeight', 'plan.completed']);
  });

  it('aborts at the first analysis when pg-boss fails, and every pending job ends on legacy', async () => {
    await legacyBaseline('test.fail-on-pgboss', 40);
    const ramp = plan({
      name: 'doomed',
      jobType: 'test.fail-on-pgboss',
      steps: [{ setWeight: 100 }, { analysis: { interval: '1s', count: 30, gates: { minSamples: 5, maxDeadLetters: 0 } } }, { setWeight: 100 }],
    });
    const run = await withBossWorker(['test.fail-on-pgboss'], 1, async () => {
      const started = runPlan(context, ramp, { tickMs: 100 });
      await pollUntil('the weight to be set', async () => (await readFlags(pool)).get('test.fail-on-pgboss')?.basisPoints === 10_000);
      producer.flags.invalidate();
      await producer.manager.enqueueMany('test.fail-on-pgboss', Array.from({ length: 40 }, () => ({ payload: { ms: 150 } })));
      return started;
    });
    expect(run.state).toBe('aborted');
    expect(run.reason).toMatch(/gate failed: maxDeadLetters/);
    const { rows } = await pool.query(`SELECT count(*) AS n FROM pgboss.job WHERE name = 'test.fail-on-pgboss' AND state IN ('created', 'retry')`);
    expect(rows[0].n).toBe('0');
    expect(await countWhere(pool, `engine = 'PGBOSS' AND status IN ('PENDING', 'RUNNING')`)).toBe(0);
    expect(await countWhere(pool, `engine = 'LEGACY' AND status = 'PENDING' AND "routeReason" = 'rolledback'`)).toBeGreaterThan(0);
    expect((await readFlags(pool)).get('test.fail-on-pgboss')?.killSwitch).toBe(true);
  });

  it('keeps waiting while a gate is inconclusive', async () => {
    const waiting = plan({ name: 'quiet', jobType: 'test.noop', steps: [{ setWeight: 10 }, { analysis: { interval: '100ms', count: 1000, gates: { minSamples: 1000 } } }] });
    let run = await startPlan(context, waiting);
    run = (await tick(context, run)).run;
    // Ticks before the first interval has passed do not evaluate; poll until one does.
    const first = await pollUntil('a first evaluation', async () => {
      const result = await tick(context, run);
      return result.gates ? result : undefined;
    });
    const results = [first, await tick(context, run)];
    expect(results.map((r) => [r.event, r.gates?.status])).toEqual([
      ['waiting', 'inconclusive'],
      ['waiting', 'inconclusive'],
    ]);
    expect(results[1]!.run).toMatchObject({ state: 'running', currentStep: 1 });
  });

  it('pauses for a person once its analysis stays inconclusive for count evaluations, and stays paused', async () => {
    const quiet = plan({
      name: 'quiet',
      jobType: 'test.noop',
      steps: [{ setWeight: 10 }, { analysis: { interval: '100ms', count: 3, gates: { minSamples: 1000 } } }, { setWeight: 20 }],
    });
    let run = await startPlan(context, quiet);
    run = (await tick(context, run)).run;
    const events: TickResult[] = [];
    const paused = await pollUntil('the analysis to give up', async () => {
      const result = await tick(context, await runById(pool, run.id));
      events.push(result);
      return result.event === 'paused' ? result : undefined;
    });
    expect(paused.gates?.status).toBe('inconclusive');
    expect(paused.run).toMatchObject({ state: 'paused', currentStep: 1, reason: 'analysis inconclusive after 3 evaluations; advance by hand or abort' });
    // Not before count × interval: the ticks before it kept waiting.
    expect(events.slice(0, -1).every((e) => e.event === 'waiting')).toBe(true);
    expect(Date.now() - paused.run.stepStartedAt.getTime()).toBeGreaterThanOrEqual(300);

    // Paused stays paused: ticks neither evaluate nor advance, and the weight stays at 10 %.
    const later = [await tick(context, paused.run), await tick(context, await runById(pool, run.id))];
    expect(later.map((r) => [r.event, r.run.state, r.run.currentStep, r.gates])).toEqual([
      ['paused', 'paused', 1, undefined],
      ['paused', 'paused', 1, undefined],
    ]);
    expect((await readFlags(pool)).get('test.noop')?.basisPoints).toBe(1000);

    // A person decides: the gates are still inconclusive, so advancing needs --force.
    await expect(advancePlan(context, await runById(pool, run.id))).rejects.toThrow(/the gates cannot judge yet .*'cutover plan advance --force'/);
    const forced = await advancePlan(context, await runById(pool, run.id), { force: true });
    expect(forced.run).toMatchObject({ state: 'completed' });
    expect((await readFlags(pool)).get('test.noop')?.basisPoints).toBe(2000);
    const { rows } = await pool.query<{ action: string }>(`SELECT action FROM "RolloutEvent" WHERE action LIKE 'plan.%' ORDER BY id`);
    // The forced advance is audited, then landing on the last setWeight completes the plan.
    expect(rows.map((r) => r.action)).toEqual(['plan.start', 'plan.setWeight', 'plan.step', 'plan.advance.forced', 'plan.setWeight', 'plan.completed']);
  });

  it('continues from the stored step after a controller restart, and refuses a second controller', async () => {
    const soak = plan({ name: 'soak', jobType: 'test.noop', steps: [{ setWeight: 10 }, { pause: { duration: '1h' } }, { setWeight: 20 }] });
    const first = new AbortController();
    const firstRun = runPlan(context, soak, { tickMs: 50, signal: first.signal });
    await pollUntil('the soak step', async () => (await pool.query(`SELECT "currentStep" FROM "RolloutPlanRun"`)).rows[0]?.currentStep === 1);

    await expect(runPlan(context, soak, { tickMs: 50 })).rejects.toThrow(/another controller is driving a plan for test.noop/);
    first.abort();
    expect((await firstRun).currentStep).toBe(1);

    // The restarted controller ticks a few times on the stored step before it is stopped.
    const second = new AbortController();
    let ticks = 0;
    const restarted = runPlan(context, soak, {
      tickMs: 50,
      signal: second.signal,
      onTick: () => {
        ticks += 1;
        if (ticks === 3) second.abort();
      },
    });
    const resumed = await restarted;
    expect(ticks).toBe(3);
    expect(resumed).toMatchObject({ currentStep: 1, state: 'running', id: (await firstRun).id });
    const setWeights = await pool.query(`SELECT count(*) AS n FROM "RolloutEvent" WHERE action = 'plan.setWeight'`);
    expect(setWeights.rows[0].n).toBe('1');

    const advanced = await advancePlan(context, resumed);
    expect(advanced.run.state).toBe('completed');
    expect((await readFlags(pool)).get('test.noop')?.basisPoints).toBe(2000);
  });
});

describe('plan run and plan abort, as commands', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cutover-plan-cli-'));
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  const writePlan = async (name: string, body: object) => {
    const file = join(dir, `${name}.yaml`);
    await writeFile(file, stringify({ name, jobType: 'test.noop', ...body }));
    return file;
  };
  const common = () => ['--registry', fixtureRegistry, '--database-url', database.url];

  it('plan run drives a plan to its end and exits 0', async () => {
    const file = await writePlan('two-steps', { steps: [{ setWeight: 10 }, { setWeight: 30 }] });
    const result = await runCli(['plan', 'run', file, '--tick-ms', '50', '--actor', 'ci', '--json', ...common()]);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).run).toMatchObject({ planName: 'two-steps', jobType: 'test.noop', state: 'completed', currentStep: 2 });
    expect((await readFlags(pool)).get('test.noop')?.basisPoints).toBe(3000);
    const { rows } = await pool.query<{ action: string; actor: string }>(`SELECT action, actor FROM "RolloutEvent" WHERE action LIKE 'plan.%' ORDER BY id`);
    expect(rows).toEqual(['plan.start', 'plan.setWeight', 'plan.step', 'plan.setWeight', 'plan.completed'].map((action) => ({ action, actor: 'ci' })));
    expect((await runCli(['plan', 'run', file, '--tick-ms', '10', ...common()])).code).toBe(2);
  });

  it('plan abort rolls back what a running controller ramped; the controller then exits 1 saying why', async () => {
    const file = await writePlan('held', { steps: [{ setWeight: 100 }, { pause: {} }, { setWeight: 50 }] });
    const controller = startCli(['plan', 'run', file, '--tick-ms', '50', ...common()]);
    await pollUntil('the plan to wait at its pause', async () => (await pool.query(`SELECT state, "currentStep" FROM "RolloutPlanRun"`)).rows[0]?.state === 'paused');
    expect((await readFlags(pool)).get('test.noop')?.basisPoints).toBe(10_000);
    producer.flags.invalidate();
    const sent = await producer.manager.enqueueMany('test.noop', Array.from({ length: 10 }, () => ({ payload: {} })));
    expect(sent.every((job) => job.engine === 'PGBOSS')).toBe(true);

    const abort = await runCliInProcess(['plan', 'abort', '--type', 'test.noop', '--actor', 'bob', '--yes', '--json', ...common()]);
    expect(abort.code, abort.stderr).toBe(0);
    expect(JSON.parse(abort.stdout)).toMatchObject({ event: 'aborted', run: { state: 'aborted', reason: 'aborted by bob' } });

    const exit = await controller.exited;
    expect(exit.code, controller.stderr()).toBe(1);
    expect(controller.stderr()).toMatch(/plan aborted: aborted by bob/);
    expect(controller.stdout()).toMatch(/paused: held \(test\.noop\) paused, step 2\/3/);

    // The way back: kill switch on, the ten jobs back on legacy, nothing left in pg-boss's queue.
    expect((await readFlags(pool)).get('test.noop')).toMatchObject({ killSwitch: true });
    expect(await countWhere(pool, `engine = 'LEGACY' AND status = 'PENDING' AND "routeReason" = 'rolledback'`)).toBe(10);
    expect(Number((await pool.query(`SELECT count(*) AS n FROM pgboss.job WHERE name = 'test.noop'`)).rows[0].n)).toBe(0);
    // Abort is final: nothing is left to abort.
    const again = await runCliInProcess(['plan', 'abort', '--type', 'test.noop', '--yes', ...common()]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/no active rollout plan for test\.noop/);
  });
});
