import type { Pool } from '../db/pool.js';
import type { EffectiveRoute, EnvOverride } from '../rollout/decide.js';
import type { LegacyTable } from '../table/table.js';
import { DEFAULT_WINDOW, type ActivityWindow, type LiveCount, type RecentActivity } from './legacy-counts.js';
import { readState, type LastReconcile, type QueueDepth, type StateSnapshot } from './state.js';

export {
  DEFAULT_WINDOW,
  LATENCY_BUCKETS,
  type ActivityWindow,
  type LatencyBuckets,
  type LiveCount,
  type MinuteActivity,
  type RecentActivity,
  type WindowTotals,
} from './legacy-counts.js';
export type { LastReconcile, QueueDepth } from './state.js';

/** A flag as the dashboard and /metrics show it. */
export interface FlagView {
  jobType: string;
  percent: number;
  killSwitch: boolean;
  fallbackToLegacy: boolean;
  finalized: boolean;
}

export interface MetricsData {
  at: string;
  window: ActivityWindow;
  flags: FlagView[];
  /** Where new jobs of each registered type go now, after kill switches and environment overrides. */
  routes: EffectiveRoute[];
  pgbossInstalled: boolean;
  live: LiveCount[];
  queues: QueueDepth[];
  activity: RecentActivity;
  reconcile: LastReconcile | null;
  /** How long these reads took, in seconds. */
  seconds: number;
}

/** The read model's parts that /metrics and the dashboard's tables and charts show: none counts the whole table. */
export const METRICS_PARTS = ['flags', 'routes', 'live', 'depths', 'activity', 'reconcile'] as const;
export type MetricsPart = (typeof METRICS_PARTS)[number];

export interface MetricsSource {
  pool: Pool;
  table: LegacyTable;
  /** The registered job types. */
  types: readonly string[];
  /** PGBOSS_ROLLOUT_PERCENTAGE / USE_PGBOSS of this process, as `cutover status` applies them. */
  env: EnvOverride;
  window?: ActivityWindow;
}

/** MetricsData from a read of (at least) the metrics parts, over `window`. */
export function metricsOf(state: StateSnapshot<MetricsPart>, window: ActivityWindow): MetricsData {
  return {
    at: state.at,
    window,
    flags: [...state.flags]
      .sort((a, b) => a.jobType.localeCompare(b.jobType))
      .map((flag) => ({ jobType: flag.jobType, percent: flag.basisPoints / 100, killSwitch: flag.killSwitch, fallbackToLegacy: flag.fallbackToLegacy, finalized: flag.finalized !== undefined })),
    routes: state.routes,
    pgbossInstalled: state.pgbossInstalled,
    live: state.live,
    queues: state.depths,
    activity: state.activity,
    reconcile: state.reconcile,
    seconds: state.seconds,
  };
}

/** Every number of the dashboard's tables and charts and of /metrics, in one read of the read model. */
export async function readMetrics(source: MetricsSource): Promise<MetricsData> {
  const window = source.window ?? DEFAULT_WINDOW;
  const state = await readState(source.pool, source.table, { parts: METRICS_PARTS, types: source.types, env: source.env, window });
  return metricsOf(state, window);
}
