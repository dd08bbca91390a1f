import type { Pool } from '../db/pool.js';
import type { Engine } from '../jobs/define.js';
import { typeSql, type LegacyTable } from '../table/table.js';

/**
 * The read model's statements on the legacy table. The numbers an operator watches during a dual
 * run are read so that one read stays cheap on a table of millions of rows: only readJobCounts
 * counts the whole table (`cutover status` asks for it, and takes ~0.7 s on 1M rows). Live work
 * (waiting, running) is counted through the claim index, which only holds unfinished jobs;
 * finished work is counted over a bounded window of recent rows, found through the (type,
 * createdAt) index that migration 0002 and `cutover init` create.
 */

/** Rows waiting and running now, per type and engine (the rows' own status). */
export interface LiveCount {
  type: string;
  engine: Engine;
  waiting: number;
  running: number;
}

/** One minute of finished jobs on one engine. */
export interface MinuteActivity {
  /** Start of the minute, seconds since the epoch (UTC). */
  minute: number;
  engine: Engine;
  completed: number;
  /** Jobs that failed for good: a legacy attempt that was retried is not one. */
  failed: number;
  /** Creation to completion of the jobs completed that minute; null when none did. */
  p50: number | null;
  p95: number | null;
}

/** Finished jobs and routing exceptions of one type and engine over the window. */
export interface WindowTotals {
  type: string;
  engine: Engine;
  completed: number;
  failed: number;
  /** Jobs created in the window that pg-boss refused and the fallback wrote to legacy. */
  fallbacks: number;
  /** Jobs created in the window that a pg-boss worker handed back to legacy under a kill switch. */
  handedBack: number;
}

/** Creation-to-completion seconds of one type and engine's completed jobs, by histogram bucket. */
export interface LatencyBuckets {
  type: string;
  engine: Engine;
  /** Per bound of LATENCY_BUCKETS, then one for above the last: jobs in (previous bound, bound], not cumulative. */
  counts: number[];
  /** Sum of the latencies in each of those buckets. */
  sums: number[];
}

export interface RecentActivity {
  minutes: MinuteActivity[];
  totals: WindowTotals[];
  latency: LatencyBuckets[];
}

export interface ActivityWindow {
  /** Finished jobs are counted over this many seconds back from now. @defaultValue 3600 */
  seconds: number;
  /**
   * How much older than the window a finished job may have been created and still be counted:
   * the bound that lets the (type, createdAt) index serve the read. A job that waited longer
   * than this before it finished is left out of the window (reconcile's comparison covers it).
   * @defaultValue 3600
   */
  lookbackSeconds: number;
}

export const DEFAULT_WINDOW: ActivityWindow = { seconds: 3600, lookbackSeconds: 3600 };

/** Upper bounds (seconds) of the latency histogram: from a pg-boss pickup to a long legacy queue. */
export const LATENCY_BUCKETS: readonly number[] = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/**
 * Waiting and running rows. Both conditions name the claim index's leading columns (engine,
 * status), so Postgres reads only the unfinished part of the index whatever its version.
 */
export async function readLiveCounts(pool: Pool, table: LegacyTable): Promise<LiveCount[]> {
  const { col, status, ref } = table;
  const { rows } = await pool.query<LiveCount>(
    `SELECT ${typeSql(table)} AS type, j.engine::text AS engine,
            count(*) FILTER (WHERE j.${col.status} = ${status.pending})::int AS waiting,
            count(*) FILTER (WHERE j.${col.status} = ${status.running})::int AS running
       FROM ${ref} j
      WHERE j.engine IN ('LEGACY', 'PGBOSS') AND j.${col.status} IN (${status.pending}, ${status.running})
      GROUP BY 1, 2 ORDER BY 1, 2`,
  );
  return rows;
}

/**
 * A failed row is a failure of its job unless a retry follows it: on a new-row table, a later
 * row of the same chain (found through the originalJobId index; only failed rows ask). On a
 * same-row table a retried row is PENDING again, so a FAILED row is final.
 */
function finalFailureSql(table: LegacyTable): string {
  const { col, ref } = table;
  if (table.retries === 'same-row' || !col.originalJobId) return 'true';
  return `NOT EXISTS (SELECT 1 FROM ${ref} r WHERE r.${col.originalJobId} = COALESCE(j.${col.originalJobId}, j.${col.id}) AND r.${col.createdAt} > j.${col.createdAt})`;
}

/** The chain's creation: a legacy retry row's latency runs from its first attempt, as reconcile's comparison has it. */
function chainCreatedSql(table: LegacyTable): string {
  const { col, ref } = table;
  if (table.retries === 'same-row' || !col.originalJobId) return `j.${col.createdAt}`;
  return `CASE WHEN j.${col.originalJobId} IS NULL THEN j.${col.createdAt}
          ELSE COALESCE((SELECT root.${col.createdAt} FROM ${ref} root WHERE root.${col.id} = j.${col.originalJobId}), j.${col.createdAt}) END`;
}

/**
 * One statement for everything the charts and the windowed metrics show: the recent rows are
 * read once through the (type, createdAt) index ($2 = window + lookback seconds), then grouped
 * three ways. Parameters: $1 types, $2 scan seconds, $3 window seconds, $4 latency bounds.
 */
function activitySql(table: LegacyTable): string {
  const { col, status, ref } = table;
  const type = typeSql(table);
  const utcNow = `(now() AT TIME ZONE 'UTC')`;
  return `
  WITH recent AS MATERIALIZED (
    SELECT ${type} AS type, j.engine::text AS engine, j.${col.status} = ${status.completed} AS ok,
           j.${col.status} = ${status.failed} AND ${finalFailureSql(table)} AS final_failure,
           j.${col.createdAt} >= ${utcNow} - make_interval(secs => $3::float8) AS created_in_window,
           j."routeReason" AS reason,
           j.${col.completedAt} AS finished,
           CASE WHEN j.${col.status} = ${status.completed} THEN EXTRACT(EPOCH FROM j.${col.completedAt} - ${chainCreatedSql(table)})::float8 END AS latency
      FROM ${ref} j
     WHERE ${type} = ANY($1::text[]) AND j.${col.createdAt} >= ${utcNow} - make_interval(secs => $2::float8)
  ),
  finished AS (
    SELECT *, EXTRACT(EPOCH FROM date_trunc('minute', finished))::bigint AS minute,
           (SELECT count(*) FROM unnest($4::float8[]) AS b(bound) WHERE b.bound < latency)::int AS bucket
      FROM recent
     WHERE finished >= ${utcNow} - make_interval(secs => $3::float8) AND (ok OR final_failure)
  )
  SELECT
    (SELECT COALESCE(json_agg(m ORDER BY m.minute, m.engine), '[]') FROM (
       SELECT minute, engine, count(*) FILTER (WHERE ok)::int AS completed, count(*) FILTER (WHERE NOT ok)::int AS failed,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY latency) FILTER (WHERE ok) AS p50,
              percentile_cont(0.95) WITHIN GROUP (ORDER BY latency) FILTER (WHERE ok) AS p95
         FROM finished GROUP BY 1, 2) m) AS minutes,
    (SELECT COALESCE(json_agg(t ORDER BY t.type, t.engine), '[]') FROM (
       SELECT type, engine,
              count(*) FILTER (WHERE ok AND finished >= ${utcNow} - make_interval(secs => $3::float8))::int AS completed,
              count(*) FILTER (WHERE final_failure AND finished >= ${utcNow} - make_interval(secs => $3::float8))::int AS failed,
              count(*) FILTER (WHERE created_in_window AND reason = 'fallback')::int AS fallbacks,
              count(*) FILTER (WHERE created_in_window AND reason = 'handedback')::int AS "handedBack"
         FROM recent GROUP BY 1, 2) t) AS totals,
    (SELECT COALESCE(json_agg(h ORDER BY h.type, h.engine, h.bucket), '[]') FROM (
       SELECT type, engine, bucket, count(*)::int AS count, sum(latency)::float8 AS sum
         FROM finished WHERE ok GROUP BY 1, 2, 3) h) AS latency`;
}

interface ActivityRow {
  minutes: (Omit<MinuteActivity, 'minute'> & { minute: number | string })[];
  totals: WindowTotals[];
  latency: { type: string; engine: Engine; bucket: number; count: number; sum: number }[];
}

const round = (value: number | null) => (value === null ? null : Math.round(value * 1000) / 1000);

/** Finished jobs per minute and engine, totals and latency buckets per type and engine, over the window. */
export async function readRecentActivity(pool: Pool, table: LegacyTable, types: readonly string[], window: ActivityWindow = DEFAULT_WINDOW): Promise<RecentActivity> {
  const { rows } = await pool.query<ActivityRow>(activitySql(table), [types, window.seconds + window.lookbackSeconds, window.seconds, LATENCY_BUCKETS]);
  const row = rows[0] ?? { minutes: [], totals: [], latency: [] };
  const latency = new Map<string, LatencyBuckets>();
  for (const bucket of row.latency) {
    const key = `${bucket.type}\u0000${bucket.engine}`;
    let entry = latency.get(key);
    if (!entry) {
      entry = { type: bucket.type, engine: bucket.engine, counts: new Array<number>(LATENCY_BUCKETS.length + 1).fill(0), sums: new Array<number>(LATENCY_BUCKETS.length + 1).fill(0) };
      latency.set(key, entry);
    }
    entry.counts[bucket.bucket] = bucket.count;
    entry.sums[bucket.bucket] = bucket.sum;
  }
  return {
    minutes: row.minutes.map((m) => ({ ...m, minute: Number(m.minute), p50: round(m.p50), p95: round(m.p95) })),
    totals: row.totals,
    latency: [...latency.values()],
  };
}

/** Rows of the legacy table by type, engine and status. */
export interface JobCount {
  type: string;
  engine: string;
  status: string;
  count: number;
}

/** Every row of the table by type, engine and status: a full count, which only `cutover status` pays for. */
export async function readJobCounts(pool: Pool, table: LegacyTable): Promise<JobCount[]> {
  const { rows } = await pool.query<{ type: string; engine: string; status: string; count: string }>(
    `SELECT ${typeSql(table)} AS type, j.engine::text AS engine, j.${table.col.status}::text AS status, count(*) AS count
       FROM ${table.ref} j GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
  );
  return rows.map((row) => ({ ...row, count: Number(row.count) }));
}
