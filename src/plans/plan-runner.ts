import { setTimeout as sleep } from 'node:timers/promises';
import type { PgBoss } from 'pg-boss';
import type { Pool, Queryable } from '../db/pool.js';
import { withTransaction } from '../db/transaction.js';
import { CheckFailedError, PgbossRequiredError, PlanRunVanishedError, UsageError } from '../support/errors.js';
import { engineOutcome } from '../reconcile/compare.js';
import { findInconsistencies } from '../reconcile/reconcile.js';
import { tableOf, type OpsContext } from '../table/context.js';
import { rollback } from '../moves/rollback.js';
import { audit } from '../state/audit.js';
import { changeFlag, DEFAULT_FLAG, readFlags } from '../state/flags.js';
import { openLockHolder } from '../state/leases.js';
import { PLAN_LOCK_CLASS, type StoredPlanRun } from '../observe/state.js';
import { evaluateGates, type GateResult, type GateStatus } from './gates.js';
import { describeStep, planSchema, type Plan } from './plan.js';

export type PlanState = 'running' | 'paused' | 'completed' | 'aborted';

export interface PlanRun {
  id: string;
  planName: string;
  jobType: string;
  plan: Plan;
  currentStep: number;
  state: PlanState;
  stepStartedAt: Date;
  startedAt: Date;
  finishedAt: Date | null;
  reason: string | null;
}

export interface PlanContext extends Omit<OpsContext, 'boss'> {
  /** Only needed to abort (rollback moves pg-boss jobs). */
  boss?: PgBoss;
  /** Passed to the abort's rollback. @defaultValue 5000 */
  settleMs?: number;
  /** Legacy baseline when the step window has too few legacy jobs. @defaultValue 86400 */
  baselineSeconds?: number;
}

export interface TickResult {
  run: PlanRun;
  /** What happened this tick, for progress output. */
  event: 'advanced' | 'waiting' | 'paused' | 'completed' | 'aborted';
  gates?: { status: GateStatus; results: GateResult[] };
}

const columns = `id, "planName", "jobType", plan, "currentStep", state, "stepStartedAt", "startedAt", "finishedAt", reason`;

function toRun(row: PlanRun): PlanRun {
  return { ...row, plan: planSchema.parse(row.plan) };
}

/** A run as the read model (observe/state.ts) hands it back, its plan parsed; its other fields (the controller) kept. */
export function planRunOf<R extends StoredPlanRun>(row: R): Omit<R, 'plan'> & PlanRun {
  return { ...row, plan: planSchema.parse(row.plan) };
}

/** The run a controller drives: the newest one for the type that has not ended. */
export async function activeRun(pool: Pool, jobType?: string): Promise<PlanRun | undefined> {
  const { rows } = await pool.query<PlanRun>(
    `SELECT ${columns} FROM "RolloutPlanRun" WHERE state IN ('running', 'paused') AND ($1::text IS NULL OR "jobType" = $1)
      ORDER BY "startedAt" DESC`,
    [jobType ?? null],
  );
  if (rows.length > 1 && !jobType) throw new UsageError(`${rows.length} plans are active (${rows.map((r) => r.jobType).join(', ')}); pass --type`);
  return rows[0] ? toRun(rows[0]) : undefined;
}

export async function runById(pool: Pool, id: string): Promise<PlanRun> {
  const { rows } = await pool.query<PlanRun>(`SELECT ${columns} FROM "RolloutPlanRun" WHERE id = $1`, [id]);
  if (!rows[0]) throw new PlanRunVanishedError(id);
  return toRun(rows[0]);
}

/** Creates the run of a plan. One active run per job type; never over a kill switch. */
export async function startPlan(context: PlanContext, plan: Plan): Promise<PlanRun> {
  if (plan.jobType !== DEFAULT_FLAG) context.registry.require(plan.jobType);
  const existing = await activeRun(context.pool, plan.jobType);
  if (existing) return existing;
  const flags = await readFlags(context.pool);
  if (flags.get(plan.jobType)?.killSwitch || flags.get(DEFAULT_FLAG)?.killSwitch) {
    throw new UsageError(`the kill switch is on for ${plan.jobType}; release it with 'cutover rollout unkill${plan.jobType === DEFAULT_FLAG ? '' : ` --type ${plan.jobType}`}' before starting a plan`);
  }
  const { rows } = await context.pool.query<PlanRun>(
    `INSERT INTO "RolloutPlanRun" (id, "planName", "jobType", plan, state) VALUES (gen_random_uuid(), $1, $2, $3::jsonb, 'running') RETURNING ${columns}`,
    [plan.name, plan.jobType, JSON.stringify(plan)],
  );
  const run = toRun(rows[0]!);
  await audit(context.pool, { actor: context.actor, action: 'plan.start', jobType: plan.jobType, after: { plan: plan.name, steps: plan.steps.length } });
  return run;
}

type ActiveState = Extract<PlanState, 'running' | 'paused'>;
const ACTIVE: readonly ActiveState[] = ['running', 'paused'];

/**
 * Writes a transition only if the run is still where it was read: in one of `from.states` and,
 * when given, in `from.step`. Returns undefined, having written nothing, when someone else (a
 * controller, `plan advance`, `plan abort`) moved it first. `from.states` can only name active
 * states, so no transition ever leaves `completed` or `aborted`.
 */
async function transition(
  db: Queryable,
  id: string,
  from: { states: readonly ActiveState[]; step?: number },
  to: { state: PlanState; reason: string | null; step?: number; newStep?: boolean },
): Promise<PlanRun | undefined> {
  const { rows } = await db.query<PlanRun>(
    `UPDATE "RolloutPlanRun" SET "currentStep" = COALESCE($2, "currentStep"), state = $3::text, reason = $4,
            "stepStartedAt" = CASE WHEN $5 THEN now() ELSE "stepStartedAt" END,
            "finishedAt" = CASE WHEN $3::text IN ('completed', 'aborted') THEN now() ELSE NULL END,
            "updatedAt" = now()
      WHERE id = $1 AND state = ANY($6::text[]) AND ($7::int IS NULL OR "currentStep" = $7)
      RETURNING ${columns}`,
    [id, to.step ?? null, to.state, to.reason, to.newStep ?? false, from.states, from.step ?? null],
  );
  return rows[0] ? toRun(rows[0]) : undefined;
}

/** Someone else moved the run first: report it as it now is. */
async function asItNowIs(context: PlanContext, id: string): Promise<TickResult> {
  const run = await runById(context.pool, id);
  return { run, event: run.state === 'running' ? 'waiting' : run.state };
}

/**
 * Leaves the current step for `next`. What the step being left does (a setWeight's flag change)
 * is applied in the same transaction as the step change, and the step change is a compare-and-
 * set on the step and state read: whoever advances (the controller, `plan advance`, two at once)
 * applies each step exactly once. The step change goes first so a loser stops before touching
 * the flag; it writes nothing and gets the run as it now is.
 */
async function moveTo(context: PlanContext, run: PlanRun, next: number, action: string): Promise<TickResult> {
  const done = next >= run.plan.steps.length;
  const leaving = run.plan.steps[run.currentStep];
  const moved = await withTransaction(context.pool, async (client) => {
    const updated = await transition(client, run.id, { states: ACTIVE, step: run.currentStep }, { step: next, state: done ? 'completed' : 'running', reason: null, newStep: true });
    if (!updated) return undefined;
    if (leaving && 'setWeight' in leaving) {
      const basisPoints = Math.round(leaving.setWeight * 100);
      const reason = `plan ${run.planName} step ${run.currentStep + 1}`;
      await changeFlag(context.pool, { jobType: run.jobType, basisPoints }, { actor: context.actor, action: 'plan.setWeight', reason }, client);
    }
    await audit(client, {
      actor: context.actor,
      action: done ? 'plan.completed' : action,
      jobType: run.jobType,
      before: { step: run.currentStep },
      after: done ? { plan: run.planName } : { step: next, does: describeStep(run.plan.steps[next]!) },
    });
    return updated;
  });
  if (!moved) return asItNowIs(context, run.id);
  return { run: moved, event: done ? 'completed' : 'advanced' };
}

/** Waits for a person: running to paused, unless the run moved since it was read. */
async function pause(context: PlanContext, run: PlanRun, reason: string): Promise<TickResult> {
  const paused = await transition(context.pool, run.id, { states: ['running'], step: run.currentStep }, { state: 'paused', reason });
  return paused ? { run: paused, event: 'paused' } : asItNowIs(context, run.id);
}

/** Gates for the current analysis step, from reconcile's numbers since the step began. */
export async function evaluateStep(context: PlanContext, run: PlanRun): Promise<{ status: GateStatus; results: GateResult[] }> {
  const step = run.plan.steps[run.currentStep];
  if (!step || !('analysis' in step)) return { status: 'pass', results: [] };
  const types = run.jobType === DEFAULT_FLAG ? context.registry.names() : [run.jobType];
  const window = Math.max(1, (Date.now() - run.stepStartedAt.getTime()) / 1000);
  const baseline = Math.max(window, context.baselineSeconds ?? 86_400);
  const [pgboss, legacy, findings] = await Promise.all([
    engineOutcome(context.pool, tableOf(context), 'PGBOSS', types, window),
    engineOutcome(context.pool, tableOf(context), 'LEGACY', types, baseline),
    findInconsistencies({ pool: context.pool, registry: context.registry, table: tableOf(context), graceSeconds: 60 }, types),
  ]);
  return evaluateGates(step.analysis.gates, { pgboss, legacy, lost: findings.lost.count, double: findings.double.count });
}

/** One step of the controller: does what the current step says, at most one transition. */
export async function tick(context: PlanContext, run: PlanRun): Promise<TickResult> {
  if (run.state === 'completed' || run.state === 'aborted') return { run, event: run.state };
  const step = run.plan.steps[run.currentStep];
  if (!step) return moveTo(context, run, run.currentStep, 'plan.step');
  const elapsed = (Date.now() - run.stepStartedAt.getTime()) / 1000;

  // Leaving a setWeight step applies it (see moveTo).
  if ('setWeight' in step) return moveTo(context, run, run.currentStep + 1, 'plan.step');
  if ('pause' in step) {
    if (step.pause.duration === undefined) {
      if (run.state === 'paused') return { run, event: 'paused' };
      return pause(context, run, 'waiting for plan advance');
    }
    return elapsed >= step.pause.duration ? moveTo(context, run, run.currentStep + 1, 'plan.step') : { run, event: 'waiting' };
  }
  if (run.state === 'paused' || elapsed < step.analysis.interval) return { run, event: run.state === 'paused' ? 'paused' : 'waiting' };
  const gates = await evaluateStep(context, run);
  if (gates.status === 'pass') return { ...(await moveTo(context, run, run.currentStep + 1, 'plan.step')), gates };
  if (gates.status === 'fail') {
    const reason = `gate failed: ${gates.results.filter((r) => r.status === 'fail').map((r) => `${r.gate} (${r.detail})`).join('; ')}`;
    return { ...(await abortPlan(context, run, reason, { cause: 'gate' })), gates };
  }
  if (elapsed >= step.analysis.interval * step.analysis.count) {
    const reason = `analysis inconclusive after ${step.analysis.count} evaluations; advance by hand or abort`;
    return { ...(await pause(context, run, reason)), gates };
  }
  return { run, event: 'waiting', gates };
}

/** Next step now. An analysis step's gates must pass unless `force`, which is audited. */
export async function advancePlan(context: PlanContext, run: PlanRun, options: { force?: boolean } = {}): Promise<TickResult> {
  const step = run.plan.steps[run.currentStep];
  if (run.state !== 'running' && run.state !== 'paused') throw new UsageError(`plan ${run.planName} is ${run.state}`);
  let gates: TickResult['gates'];
  if (step && 'analysis' in step) {
    gates = await evaluateStep(context, run);
    if (gates.status !== 'pass' && !options.force) {
      const why = gates.results.filter((r) => r.status !== 'pass').map((r) => `${r.gate}: ${r.detail}`).join('; ');
      throw new CheckFailedError(
        gates.status === 'fail'
          ? `a gate fails (${why}): to end the rollout and move its jobs back, run 'cutover plan abort'; to go on regardless, 'cutover plan advance --force' (audited)`
          : `the gates cannot judge yet (${why}): wait for more finished jobs, or run 'cutover plan abort' to end the rollout; 'cutover plan advance --force' goes on regardless (audited)`,
      );
    }
  }
  const result = await moveTo(context, run, run.currentStep + 1, options.force ? 'plan.advance.forced' : 'plan.advance');
  // Landing on a setWeight step applies it at once, as the controller would.
  const next = result.run.plan.steps[result.run.currentStep];
  const applied = result.event === 'advanced' && next && 'setWeight' in next ? await tick(context, result.run) : result;
  return { ...applied, ...(gates ? { gates } : {}) };
}

/**
 * Abort. The way back is never blocked (DESIGN §12): the kill switch goes on first, in a
 * transaction of its own, so new jobs go legacy whatever fails next; then the run is marked
 * aborted (unless it has already ended: abort is final and so is completion); then rollback
 * moves the pg-boss jobs back. If rollback fails, the run stays aborted, the kill switch stays
 * on, and the error goes on; running `cutover rollback` (or this again) finishes the move.
 */
/** Why a plan was aborted, kept beside the reason's words so readers decide on this, not on them. */
export type AbortCause = 'gate' | 'operator';

export async function abortPlan(context: PlanContext, run: PlanRun, reason: string, options: { cause?: AbortCause } = {}): Promise<TickResult> {
  const cause = options.cause ?? 'operator';
  context.log.warn({ plan: run.planName, reason }, 'aborting the rollout plan: rolling back');
  const why = `plan ${run.planName} aborted: ${reason}`;
  await changeFlag(context.pool, { jobType: run.jobType, killSwitch: true }, { actor: context.actor, action: 'flag.kill', reason: why });
  const marked = await withTransaction(context.pool, async (client) => {
    const updated = await transition(client, run.id, { states: ACTIVE }, { state: 'aborted', reason });
    if (updated) await audit(client, { actor: context.actor, action: 'plan.aborted', jobType: run.jobType, before: { step: updated.currentStep }, after: { state: 'aborted', cause }, reason });
    return updated;
  });
  const current = marked ?? (await runById(context.pool, run.id));
  // A concurrent abort marked it first and does the rollback; a second one would only contend for its lock.
  if (!marked && run.state !== 'aborted' && current.state === 'aborted') return { run: current, event: 'aborted' };
  await rollBackPlan(context, current, why);
  return { run: current, event: current.state === 'completed' ? 'completed' : 'aborted' };
}

async function rollBackPlan(context: PlanContext, run: PlanRun, reason: string): Promise<void> {
  if (!context.boss) throw new PgbossRequiredError('aborting a plan', ' to roll back (the kill switch is already on)');
  try {
    await rollback({
      pool: context.pool,
      databaseUrl: context.databaseUrl,
      boss: context.boss,
      registry: context.registry,
      table: tableOf(context),
      log: context.log,
      actor: context.actor,
      reason,
      settleMs: context.settleMs ?? 5000,
      ...(run.jobType === DEFAULT_FLAG ? {} : { types: [run.jobType] }),
    });
  } catch (error) {
    const command = `cutover rollback${run.jobType === DEFAULT_FLAG ? '' : ` --type ${run.jobType}`}`;
    context.log.error({ err: error, plan: run.planName }, `the plan is aborted and the kill switch on, but the rollback failed; finish it with '${command}'`);
    throw error;
  }
}

export type { Controller } from '../observe/state.js';

/**
 * The controller: drives a plan to its end, one tick at a time. All state is in
 * RolloutPlanRun, so a restarted controller continues from the stored step; an advisory lock
 * keeps a second controller from driving the same plan.
 */
export async function runPlan(
  context: PlanContext,
  plan: Plan,
  options: { signal?: AbortSignal; tickMs?: number; onTick?: (result: TickResult) => void } = {},
): Promise<PlanRun> {
  // A session lock on a session (directly, or on the DIRECT_URL passed as databaseUrl); a lease
  // behind a transaction pooler, where a session lock would outlive this controller.
  const lock = await openLockHolder(context.databaseUrl, { applicationName: 'cutover-plan', log: context.log });
  try {
    if (!(await lock.tryTake({ space: PLAN_LOCK_CLASS, name: plan.jobType }, 'exclusive'))) throw new CheckFailedError(`another controller is driving a plan for ${plan.jobType}`);
    let run = await startPlan(context, plan);
    for (;;) {
      // Re-read each tick: `plan advance` and `plan abort` change the run from other processes.
      const result = await tick(context, await runById(context.pool, run.id));
      run = result.run;
      options.onTick?.(result);
      if (run.state === 'completed' || run.state === 'aborted' || options.signal?.aborted) return run;
      if (result.event !== 'advanced') await sleep(options.tickMs ?? 1000, undefined, { signal: options.signal }).catch(() => undefined);
    }
  } finally {
    await lock.release();
  }
}
