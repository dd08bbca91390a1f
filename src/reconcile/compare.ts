import type { Pool } from '../db/pool.js';
import type { Engine } from '../jobs/define.js';
import { withTransaction } from '../db/transaction.js';
import { typeSql, type LegacyTable } from '../table/table.js';
import { compareSuccessRates, type Verdict } from './stats.js';

export interface EngineOutcome {
  engine: Engine;
  /** Finished logical jobs: a legacy retry chain counts once. */
  jobs: number;
  succeeded: number;
  successRate: number | null;
  meanAttempts: number | null;
  latencySeconds: { p50: number | null; p95: number | null; p99: number | null };
  /** Jobs that failed for good (pg-boss: dead-lettered). */
  deadLetters: number;
}

export interface TypeComparison {
  type: string;
  legacy: EngineOutcome;
  pgboss: EngineOutcome;
  verdict: Verdict;
  z: number | null;
}

interface OutcomeRow {
  type: string;
  engine: Engine;
  jobs: number;
  succeeded: number;
  mean_attempts: number | null;
  /** p50, p95, p99 of seconds from creation to completion, over successful jobs. */
  percentiles: (number | null)[] | null;
}

/**
 * Outcomes per job type and engine over the window, per logical job: legacy retries are rows
 * chained by originalJobId, a pg-boss retry is the same row, so both are grouped by chain. A
 * chain belongs to the engine of its latest row; chains still in flight are left out. Latency
 * is from the chain's creation to its successful completion.
 */
function outcomesSql(table: LegacyTable): string {
  const { col, status, ref } = table;
  const type = typeSql(table);
  const inWindowOf = (alias: string) => `${typeSql(table, alias)} = ANY($1::text[]) AND ${alias}.${col.createdAt} >= (now() AT TIME ZONE 'UTC') - make_interval(secs => $2::float8)`;
  const inWindow = inWindowOf('j');
  // The float8 percentile_cont sorted, EXTRACT(EPOCH ...)::float8, without its numeric detour
  // (up to a quarter of the statement's time): the float8 nearest to a whole number of
  // microseconds. date_part's float8 can miss that by a bit past a day (it adds the days after
  // rounding), but it is still near enough to round to the microseconds, and their quotient is
  // that nearest float8, for any latency under decades.
  const seconds = `round(date_part('epoch', completed - created) * 1000000) / 1000000`;
  const outcomesOf = (jobs: string) => `
    SELECT CASE WHEN $3::boolean THEN type ELSE '*' END AS type, engine, count(*) AS jobs, count(*) FILTER (WHERE succeeded) AS succeeded,
           sum(attempts) AS attempts, count(attempts) AS counted, array_agg(${seconds}) FILTER (WHERE succeeded) AS latencies
      FROM ${jobs} WHERE NOT in_flight
     GROUP BY 1, 2`;
  // Same-row retries: every row is its whole chain.
  const original = col.originalJobId;
  return `
  WITH retried AS (
    -- Chains with more than one row: few, found through the originalJobId index.
    ${original ? `SELECT DISTINCT j.${original} AS root FROM ${ref} j WHERE j.${original} IS NOT NULL AND ${inWindow}` : `SELECT NULL::${table.idType} AS root WHERE false`}
  ),
  -- Most jobs are a chain of one row: no grouping needed for them, which keeps millions fast.
  -- Chain roots are left out by a join of the table's own, not of retried: a scan of a CTE
  -- would keep this scan, the bulk of the work, out of parallel workers.
  singles AS (
    SELECT ${type} AS type, j.engine, j.${col.status} = ${status.completed} AS succeeded, j.${col.status} IN (${status.pending}, ${status.running}) AS in_flight,
           j.${col.attempts} AS attempts, j.${col.createdAt} AS created, CASE WHEN j.${col.status} = ${status.completed} THEN j.${col.completedAt} END AS completed
      FROM ${ref} j
     WHERE ${inWindow}${original ? ` AND j.${original} IS NULL AND NOT EXISTS (SELECT 1 FROM ${ref} c WHERE c.${original} IS NOT NULL AND c.${original} = j.${col.id} AND ${inWindowOf('c')})` : ''}
  ),
  chains AS (
    SELECT ${type} AS type,
           (array_agg(j.engine ORDER BY j.${col.createdAt} DESC, j.${col.attempts} DESC))[1] AS engine,
           bool_or(j.${col.status} = ${status.completed}) AS succeeded,
           bool_or(j.${col.status} IN (${status.pending}, ${status.running})) AS in_flight,
           max(j.${col.attempts}) AS attempts,
           min(j.${col.createdAt}) AS created,
           max(j.${col.completedAt}) FILTER (WHERE j.${col.status} = ${status.completed}) AS completed
      FROM ${ref} j JOIN retried r ON r.root = ${original ? `COALESCE(j.${original}, j.${col.id})` : `j.${col.id}`}
     WHERE ${inWindow}
     GROUP BY r.root, 1
  ),
  -- Counts per type and engine, and the latencies of the successful jobs, each kind of chain
  -- aggregated straight off its rows: a hash aggregate, where percentile_cont in a GROUP BY
  -- sorts every job by type and engine before sorting each group by latency again.
  single_outcomes AS (${outcomesOf('singles')}),
  chain_outcomes AS (${outcomesOf('chains')})
  SELECT type, engine::text AS engine, (COALESCE(s.jobs, 0) + COALESCE(c.jobs, 0))::int AS jobs, (COALESCE(s.succeeded, 0) + COALESCE(c.succeeded, 0))::int AS succeeded,
         -- avg's own arithmetic: the numeric quotient of the sum by the count
         ((COALESCE(s.attempts, 0) + COALESCE(c.attempts, 0))::numeric / NULLIF(COALESCE(s.counted, 0) + COALESCE(c.counted, 0), 0))::float8 AS mean_attempts,
         (SELECT percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY l) FROM (SELECT unnest(s.latencies) UNION ALL SELECT unnest(c.latencies)) AS u(l)) AS percentiles
    FROM single_outcomes s FULL JOIN chain_outcomes c USING (type, engine)`;
}

/** Outcomes of one engine over all the given types together (rollout gates on `*`). */
export async function engineOutcome(pool: Pool, table: LegacyTable, engine: Engine, types: readonly string[], sinceSeconds: number): Promise<EngineOutcome> {
  const rows = await queryOutcomes(pool, table, [types, sinceSeconds, false]);
  return outcome(engine, rows.find((row) => row.engine === engine));
}

function outcome(engine: Engine, row: OutcomeRow | undefined): EngineOutcome {
  const jobs = row?.jobs ?? 0;
  const succeeded = row?.succeeded ?? 0;
  const round = (value: number | null | undefined, digits = 3) => (value === null || value === undefined ? null : Number(Number(value).toFixed(digits)));
  return {
    engine,
    jobs,
    succeeded,
    successRate: jobs ? round(succeeded / jobs, 4) : null,
    meanAttempts: round(row?.mean_attempts),
    latencySeconds: { p50: round(row?.percentiles?.[0]), p95: round(row?.percentiles?.[1]), p99: round(row?.percentiles?.[2]) },
    deadLetters: jobs - succeeded,
  };
}

/**
 * The percentiles sort each group's latencies, some 24 bytes a job in memory: 64 MB, for this
 * one statement, sorts a group of two million jobs in memory and a larger one on disk, slower
 * but bounded. Bounded, since every sort and hash of the plan may take as much.
 */
async function queryOutcomes(pool: Pool, table: LegacyTable, params: unknown[]): Promise<OutcomeRow[]> {
  return withTransaction(pool, async (client) => {
    await client.query(`SET LOCAL work_mem = '64MB'`);
    return (await client.query<OutcomeRow>(outcomesSql(table), params)).rows;
  });
}

export async function compareOutcomes(pool: Pool, table: LegacyTable, types: readonly string[], sinceSeconds: number, minSample = 30): Promise<TypeComparison[]> {
  const rows = await queryOutcomes(pool, table, [types, sinceSeconds, true]);
  return types
    .map((type) => {
      const legacy = outcome('LEGACY', rows.find((r) => r.type === type && r.engine === 'LEGACY'));
      const pgboss = outcome('PGBOSS', rows.find((r) => r.type === type && r.engine === 'PGBOSS'));
      return { type, legacy, pgboss, ...compareSuccessRates(pgboss, legacy, minSample) };
    })
    .filter((comparison) => comparison.legacy.jobs + comparison.pgboss.jobs > 0);
}
