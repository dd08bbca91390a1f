import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { readFlags } from '../../src/state/flags.js';
import { planSchema, type Plan } from '../../src/plans/plan.js';
import { abortPlan, advancePlan, runById, startPlan, tick, type PlanContext } from '../../src/plans/plan-runner.js';
import type { TestDatabase } from '../helpers/database.js';
import { planContextOf, useEngineFixture } from '../helpers/fixture.js';
import { pollUntil } from '../helpers/wait.js';

// DESIGN §12 for rollout plans: each step's action applies exactly once whoever advances it,
// abort is final, and the way back (kill switch) is never blocked by a rollback that fails.
const fixture = useEngineFixture({ ttlMs: 200 });
let database: TestDatabase;
let pool: Pool;
let context: PlanContext;
beforeEach(() => {
  ({ database, pool } = fixture);
  context = planContextOf(fixture);
});

const plan = (input: unknown): Plan => planSchema.parse(input);
const ramp = plan({ name: 'ramp', jobType: 'test.noop', steps: [{ setWeight: 25 }, { pause: {} }, { setWeight: 50 }] });

async function flag(jobType = 'test.noop') {
  return (await readFlags(pool)).get(jobType);
}

/**
 * Sessions of this database waiting for a lock (the second waiter queues behind the first, not
 * the holder). Asked outside the holder's transaction, which would see one frozen snapshot of
 * pg_stat_activity.
 */
async function waitingForLocks(): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`);
  return rows[0]!.n;
}

async function actions(): Promise<string[]> {
  const { rows } = await pool.query<{ action: string }>(`SELECT action FROM "RolloutEvent" ORDER BY id`);
  return rows.map((row) => row.action);
}

describe('rollout plans under faults', () => {
  it('applies a setWeight step advanced by hand, without a controller', async () => {
    const run = await startPlan(context, ramp);
    const result = await advancePlan(context, run);
    expect(result).toMatchObject({ event: 'advanced', run: { currentStep: 1, state: 'running' } });
    expect((await flag())?.basisPoints).toBe(2500);
    expect(await actions()).toEqual(['plan.start', 'plan.setWeight', 'plan.advance']);
  });

  it('applies a step once and moves one step when two advances race', async () => {
    const run = await startPlan(context, ramp);
    // Hold the run's row so both advances have read the first step and wait at their write together.
    const holder = await pool.connect();
    await holder.query('BEGIN');
    await holder.query(`SELECT 1 FROM "RolloutPlanRun" WHERE id = $1 FOR UPDATE`, [run.id]);
    const racing = Promise.allSettled([advancePlan(context, run), advancePlan(context, run)]);
    try {
      await pollUntil('both advances to wait for the run row', async () => (await waitingForLocks()) === 2);
    } finally {
      await holder.query('COMMIT');
      holder.release();
    }
    const results = (await racing).map((settled) => {
      if (settled.status === 'rejected') throw settled.reason;
      return settled.value;
    });
    expect(results.map((r) => r.event).sort()).toEqual(['advanced', 'waiting']);
    expect(results.map((r) => r.run.currentStep)).toEqual([1, 1]);
    expect(await runById(pool, run.id)).toMatchObject({ currentStep: 1, state: 'running' });
    expect((await flag())?.basisPoints).toBe(2500);
    const { rows } = await pool.query(`SELECT action, count(*)::int AS n FROM "RolloutEvent" WHERE action IN ('plan.setWeight', 'plan.advance') GROUP BY action ORDER BY action`);
    expect(rows).toEqual([
      { action: 'plan.advance', n: 1 },
      { action: 'plan.setWeight', n: 1 },
    ]);
  });

  it('keeps an aborted run aborted when a controller ticks it with what it read before the abort', async () => {
    const stale = await startPlan(context, ramp);
    await abortPlan(context, await runById(pool, stale.id), 'operator');

    const ticked = await tick(context, stale);
    expect(ticked).toMatchObject({ event: 'aborted', run: { state: 'aborted', currentStep: 0, reason: 'operator' } });
    const advanced = await advancePlan(context, stale);
    expect(advanced).toMatchObject({ event: 'aborted', run: { state: 'aborted', currentStep: 0 } });

    expect(await runById(pool, stale.id)).toMatchObject({ state: 'aborted', currentStep: 0 });
    expect(await flag()).toMatchObject({ killSwitch: true, basisPoints: 0 });
    expect(await actions()).not.toContain('plan.setWeight');
  });

  it('sets the kill switch and marks the run aborted before a rollback that fails', async () => {
    const run = await startPlan(context, ramp);
    // Rollback's lock session cannot connect (its database does not exist); the pool still can.
    const unreachable = new URL(database.url);
    unreachable.pathname = '/cutover_no_such_database';
    const failing: PlanContext = { ...context, databaseUrl: unreachable.toString() };

    await expect(abortPlan(failing, run, 'operator')).rejects.toThrow(/cutover_no_such_database/);

    expect((await flag())?.killSwitch).toBe(true);
    expect(await runById(pool, run.id)).toMatchObject({ state: 'aborted', currentStep: 0, reason: 'operator' });
    const events = await actions();
    expect(events.slice(0, 3)).toEqual(['plan.start', 'flag.kill', 'plan.aborted']);
    expect(events).not.toContain('rollback');
  });
});
