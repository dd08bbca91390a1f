import type { Pool, Queryable } from '../db/pool.js';
import { warningCounts } from '../pgboss-schema/warnings.js';
import { isPermissionDenied, isUndefinedTable } from '../support/pg-errors.js';
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
  /**
   * pg-boss's warnings its workers kept in pgboss.warning, by kind (slow_query, queue_backlog,
   * clock_skew, …); null when this role may not read them or they were not read.
   */
  pgbossWarnings: PgbossWarningCount[] | null;
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

export interface PgbossWarningCount {
  /** pg-boss's warning type. */
  kind: string;
  count: number;
}

/**
 * pg-boss's warnings kept in the database, by kind: what every worker's pg-boss emitted (workers
 * persist them, pgboss/boss.ts), so each dashboard counts the same. A running total as long as
 * pg-boss keeps them (warningRetentionDays, 365 by default); none before pg-boss is installed;
 * null for a role without SELECT on pgboss.warning.
 */
export async function readPgbossWarnings(db: Queryable): Promise<PgbossWarningCount[] | null> {
  try {
    const { rows } = await db.query<PgbossWarningCount>(warningCounts);
    return rows;
  } catch (error) {
    if (isUndefinedTable(error)) return [];
    if (isPermissionDenied(error)) return null;
    throw error;
  }
}

/** MetricsData from a read of (at least) the metrics parts, over `window`, with pg-boss's warnings if read. */
export function metricsOf(state: StateSnapshot<MetricsPart>, window: ActivityWindow, pgbossWarnings: PgbossWarningCount[] | null = null): MetricsData {
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
    pgbossWarnings,
    seconds: state.seconds,
  };
}

/** Every number of the dashboard's tables and charts and of /metrics, in one read of the read model. */
export async function readMetrics(source: MetricsSource): Promise<MetricsData> {
  const window = source.window ?? DEFAULT_WINDOW;
  const [state, warnings] = await Promise.all([
    readState(source.pool, source.table, { parts: METRICS_PARTS, types: source.types, env: source.env, window }),
    readPgbossWarnings(source.pool),
  ]);
  return metricsOf(state, window, warnings);
}
