import type { PgBoss } from 'pg-boss';
import type { Pool } from '../db/pool.js';
import { databaseError, isPermissionDenied } from '../support/pg-errors.js';
import { isPrintable } from '../support/printable.js';
import { CheckFailedError, UsageError } from '../support/errors.js';
import type { JobRegistry } from '../jobs/registry.js';
import type { Logger } from '../support/log.js';
import { grantsOf } from '../adopt/roles.js';
import { abortPlan, activeRun } from '../plans/plan-runner.js';
import type { Flag } from '../state/flags.js';
import { changeFlag, DEFAULT_FLAG, parsePercent } from '../state/flags.js';
import type { LegacyTable } from '../table/table.js';

/** Who every write from the page is audited as. */
export const DASHBOARD_ACTOR = 'dashboard';

export interface ActionContext {
  pool: Pool;
  databaseUrl: string;
  registry: JobRegistry;
  table: LegacyTable;
  log: Logger;
  /** pg-boss, opened when first needed: only a plan abort (its rollback) needs it. */
  boss: () => Promise<PgBoss>;
  /** How long rollback lets producers see the kill switch (the flag cache's TTL). */
  settleMs: number;
}

/** A write the database refused for want of rights: the dashboard's role is read-only by design. */
export class WriteNotPermittedError extends UsageError {}

const MAX_REASON = 200;
// A reason is replayed on operators' terminals by `rollout history`: one line, printable.

/** `*` or a registered type: a typo must not create a flag nobody reads. */
function jobTypeOf(context: ActionContext, value: unknown): string {
  if (typeof value !== 'string' || !value) throw new UsageError('type must be * or a registered job type');
  if (value !== DEFAULT_FLAG) context.registry.require(value);
  return value;
}

function reasonOf(value: unknown): string | null {
  if (value === undefined || value === null || value === '') return null;
  if (typeof value !== 'string' || value.length > MAX_REASON || !isPrintable(value, { multiline: false })) {
    throw new UsageError(`reason must be one line of printable text of at most ${MAX_REASON} characters`);
  }
  return value;
}

async function writing<T>(context: ActionContext, what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (isPermissionDenied(databaseError(error))) {
      throw new WriteNotPermittedError(`the database refused ${what} to the dashboard's role: writes from the dashboard need ${grantsOf('operator')}`, { cause: error });
    }
    throw error;
  }
}

export interface FlagResult {
  flag: Flag;
}

/** Routes `percent` (0-100, as typed) of a type's new jobs to pg-boss; audited as the dashboard. */
export async function setPercentAction(context: ActionContext, input: { type?: unknown; percent?: unknown; reason?: unknown }): Promise<FlagResult> {
  const jobType = jobTypeOf(context, input.type);
  if (typeof input.percent !== 'string' && typeof input.percent !== 'number') throw new UsageError('percent must be a number from 0 to 100');
  const basisPoints = parsePercent(String(input.percent));
  const reason = reasonOf(input.reason);
  const { after } = await writing(context, 'the flag change', () => changeFlag(context.pool, { jobType, basisPoints }, { actor: DASHBOARD_ACTOR, action: 'flag.set', reason }));
  context.log.info({ jobType, percent: basisPoints / 100, actor: DASHBOARD_ACTOR }, 'flag set from the dashboard');
  return { flag: after };
}

/** Turns a type's kill switch on or off; audited as the dashboard. */
export async function setKillSwitchAction(context: ActionContext, input: { type?: unknown; on?: unknown; reason?: unknown }): Promise<FlagResult> {
  const jobType = jobTypeOf(context, input.type);
  if (typeof input.on !== 'boolean') throw new UsageError('on must be true (kill switch on) or false (release it)');
  const reason = reasonOf(input.reason);
  const action = input.on ? 'flag.kill' : 'flag.unkill';
  const { after } = await writing(context, 'the kill switch', () => changeFlag(context.pool, { jobType, killSwitch: input.on as boolean }, { actor: DASHBOARD_ACTOR, action, reason }));
  context.log.warn({ jobType, killSwitch: input.on, actor: DASHBOARD_ACTOR }, `kill switch ${input.on ? 'set' : 'released'} from the dashboard`);
  return { flag: after };
}

export interface AbortResult {
  plan: string;
  state: string;
}

/** Aborts the type's active plan: kill switch first, then rollback (plan-runner's abortPlan). */
export async function abortPlanAction(context: ActionContext, input: { type?: unknown; reason?: unknown }): Promise<AbortResult> {
  const jobType = jobTypeOf(context, input.type);
  const reason = reasonOf(input.reason) ?? 'aborted from the dashboard';
  const run = await activeRun(context.pool, jobType);
  if (!run) throw new CheckFailedError(`no active rollout plan for ${jobType}`);
  const result = await writing(context, 'the plan abort', async () =>
    abortPlan(
      { pool: context.pool, databaseUrl: context.databaseUrl, registry: context.registry, table: context.table, log: context.log, actor: DASHBOARD_ACTOR, boss: await context.boss(), settleMs: context.settleMs },
      run,
      reason,
    ),
  );
  return { plan: result.run.planName, state: result.run.state };
}
