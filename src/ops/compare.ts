import type { Pool } from '../db/pool.js';
import { withTransaction } from '../db/transaction.js';
import { typeSql, type LegacyTable } from '../table/table.js';
import { compareSuccessRates, type Verdict } from './stats.js';

export interface EngineOutcome {
  engine: 'LEGACY' | 'PGBOSS';
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
  engine: 'LEGACY' | 'PGBOSS';
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
  const inWindow = `${type} = ANY($1::text[]) AND j.${col.createdAt} >= (now() AT TIME ZONE 'UTC') - make_interval(secs => $2::float8)`;
  // Same-row retries: every row is its whole chain.
  const original = col.originalJobId;
  return `
  WITH retried AS (
    -- Chains with more than one row: few, found through the originalJobId index.
    ${original ? `SELECT DISTINCT j.${original} AS root FROM ${ref} j WHERE j.${original} IS NOT NULL AND ${inWindow}` : `SELECT NULL::${table.idType} AS root WHERE false`}
  ),
  -- Most jobs are a chain of one row: no grouping needed for them, which keeps millions fast.
  singles AS (
    SELECT ${type} AS type, j.engine, j.${col.status} = ${status.completed} AS succeeded, j.${col.status} IN (${status.pending}, ${status.running}) AS in_flight,
           j.${col.attempts} AS attempts, j.${col.createdAt} AS created, CASE WHEN j.${col.status} = ${status.completed} THEN j.${col.completedAt} END AS completed
      FROM ${ref} j
     WHERE ${inWindow}${original ? ` AND j.${original} IS NULL AND NOT EXISTS (SELECT 1 FROM retried r WHERE r.root = j.${col.id})` : ''}
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
  jobs AS (SELECT * FROM singles UNION ALL SELECT * FROM chains)
  SELECT CASE WHEN $3::boolean THEN type ELSE '*' END AS type, engine::text AS engine, count(*)::int AS jobs, count(*) FILTER (WHERE succeeded)::int AS succeeded,
         avg(attempts)::float8 AS mean_attempts,
         percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM completed - created)) FILTER (WHERE succeeded) AS percentiles
    FROM jobs WHERE NOT in_flight
   GROUP BY 1, 2`;
}

/** Outcomes of one engine over all the given types together (rollout gates on `*`). */
export async function engineOutcome(pool: Pool, table: LegacyTable, engine: 'LEGACY' | 'PGBOSS', types: readonly string[], sinceSeconds: number): Promise<EngineOutcome> {
  const rows = await queryOutcomes(pool, table, [types, sinceSeconds, false]);
  return outcome(engine, rows.find((row) => row.engine === engine));
}

function outcome(engine: 'LEGACY' | 'PGBOSS', row: OutcomeRow | undefined): EngineOutcome {
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
 * Percentiles over millions of jobs sort them all: with the default 4 MB of work_mem the sort
 * spills to disk and takes several times longer, so this one statement gets more.
 */
async function queryOutcomes(pool: Pool, table: LegacyTable, params: unknown[]): Promise<OutcomeRow[]> {
  return withTransaction(pool, async (client) => {
    await client.query(`SET LOCAL work_mem = '128MB'`);
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
