import type { Pool } from '../db/pool.js';
import type { EffectiveRoute, EnvOverride } from '../rollout/decide.js';
import type { LegacyTable } from '../table/table.js';
import type { JobCount } from './legacy-counts.js';
import { readState, type QueueSize, type StoredPlanRun } from './state.js';

export type { JobCount } from './legacy-counts.js';
export type { QueueSize } from './state.js';

export interface FlagState {
  jobType: string;
  percent: number;
  killSwitch: boolean;
  fallbackToLegacy: boolean;
  updatedAt: string;
  updatedBy: string | null;
}

export interface StatusReport {
  flags: FlagState[];
  /** Where new jobs of each registered type go now, after kill switches and environment overrides. */
  routes: EffectiveRoute[];
  /** PGBOSS_ROLLOUT_PERCENTAGE / USE_PGBOSS of this process: they beat the flags for jobs it enqueues. */
  envOverride: EnvOverride;
  /** False until a pg-boss process has installed its schema in this database. */
  pgbossInstalled: boolean;
  jobs: JobCount[];
  /** pg-boss jobs per queue and state (dead letter queues end in `.dlq`); empty before pg-boss is installed. */
  queues: QueueSize[];
  lastReconcile: { at: string; findings: number } | null;
  /** The active plan runs, newest first, with their controllers (the plan as stored: the plans room parses it). */
  plans: StoredPlanRun[];
}

/** One read-only snapshot for `cutover status`: flags, job counts, pg-boss queues, last reconcile, active plans. */
export async function getStatus(pool: Pool, table: LegacyTable, jobTypes: readonly string[], env: EnvOverride = {}): Promise<StatusReport> {
  const state = await readState(pool, table, { parts: ['flags', 'routes', 'jobs', 'queues', 'reconcile', 'plans'], types: jobTypes, env });
  return {
    flags: state.flags.map((flag) => ({
      jobType: flag.jobType,
      percent: flag.basisPoints / 100,
      killSwitch: flag.killSwitch,
      fallbackToLegacy: flag.fallbackToLegacy,
      updatedAt: flag.updatedAt.toISOString(),
      updatedBy: flag.updatedBy,
    })),
    routes: state.routes,
    envOverride: env,
    pgbossInstalled: state.pgbossInstalled,
    jobs: state.jobs,
    queues: state.queues,
    lastReconcile: state.reconcile ? { at: state.reconcile.at, findings: state.reconcile.findings } : null,
    plans: state.plans,
  };
}
