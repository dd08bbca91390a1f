import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { type JobRegistry } from '../../src/jobs/registry.js';
import { startBoss } from '../../src/pgboss/boss.js';
import { BossWorker } from '../../src/pgboss/worker.js';
import { readFlags } from '../../src/rollout/flags.js';
import { planSchema, type Plan } from '../../src/plans/plan.js';
import { advancePlan, runPlan, tick, startPlan, type PlanContext, type TickResult } from '../../src/plans/plan-runner.js';
import type { TestDatabase } from '../helpers/database.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { quietLog, type Producer } from '../helpers/engines.js';
import { countWhere } from '../helpers/jobs.js';
import { pollUntil } from '../helpers/wait.js';

const fixture = useEngineFixture({ ttlMs: 200 });
let database: TestDatabase;
let pool: Pool;
let registry: JobRegistry;
let producer: Producer;
beforeEach(() => ({ database, pool, registry, producer } = fixture));

let context: PlanContext;
beforeEach(() => {
  context = { pool, databaseUrl: database.url, registry, log: quietLog, actor: 'test', boss: producer.boss, settleMs: 200 };
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
    await new Promise((resolve) => setTimeout(resolve, 150));
    const results = [await tick(context, run), await tick(context, run)];
    expect(results.map((r) => [r.event, r.gates?.status])).toEqual([
      ['waiting', 'inconclusive'],
      ['waiting', 'inconclusive'],
    ]);
    expect(results[1]!.run).toMatchObject({ state: 'running', currentStep: 1 });
  });

  it('continues from the stored step after a controller restart, and refuses a second controller', async () => {
    const soak = plan({ name: 'soak', jobType: 'test.noop', steps: [{ setWeight: 10 }, { pause: { duration: '1h' } }, { setWeight: 20 }] });
    const first = new AbortController();
    const firstRun = runPlan(context, soak, { tickMs: 50, signal: first.signal });
    await pollUntil('the soak step', async () => (await pool.query(`SELECT "currentStep" FROM "RolloutPlanRun"`)).rows[0]?.currentStep === 1);

    await expect(runPlan(context, soak, { tickMs: 50 })).rejects.toThrow(/another controller is driving a plan for test.noop/);
    first.abort();
    expect((await firstRun).currentStep).toBe(1);

    const second = new AbortController();
    const restarted = runPlan(context, soak, { tickMs: 50, signal: second.signal });
    await new Promise((resolve) => setTimeout(resolve, 300));
    second.abort();
    const resumed = await restarted;
    expect(resumed).toMatchObject({ currentStep: 1, state: 'running', id: (await firstRun).id });
    const setWeights = await pool.query(`SELECT count(*) AS n FROM "RolloutEvent" WHERE action = 'plan.setWeight'`);
    expect(setWeights.rows[0].n).toBe('1');

    const advanced = await advancePlan(context, resumed);
    expect(advanced.run.state).toBe('completed');
    expect((await readFlags(pool)).get('test.noop')?.basisPoints).toBe(2000);
  });
});
