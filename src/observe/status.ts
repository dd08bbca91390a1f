import type { Pool } from '../db/pool.js';
import { typeSql, type LegacyTable } from '../table/table.js';
import { pgbossInstalled } from '../state/schema-check.js';
import { PGBOSS_SCHEMA } from '../pgboss/boss.js';
import { effectiveRoute, type EffectiveRoute, type EnvOverride } from '../rollout/decide.js';
import { readFlags } from '../state/flags.js';
import { deadLetterQueue } from '../pgboss/queues.js';

export interface JobCount {
  type: string;
  engine: string;
  status: string;
  count: number;
}

export interface FlagState {
  jobType: string;
  percent: number;
  killSwitch: boolean;
  fallbackToLegacy: boolean;
  updatedAt: string;
  updatedBy: string | null;
}

export interface QueueSize {
  queue: string;
  state: string;
  count: number;
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
}

async function queueSizes(pool: Pool, queues: readonly string[], installed: boolean): Promise<QueueSize[]> {
  if (!installed) return [];
  const { rows } = await pool.query<{ queue: string; state: string; count: string }>(
    `SELECT name AS queue, state::text AS state, count(*) AS count FROM ${PGBOSS_SCHEMA}.job WHERE name = ANY($1::text[]) GROUP BY 1, 2 ORDER BY 1, 2`,
    [queues],
  );
  return rows.map((row) => ({ ...row, count: Number(row.count) }));
}

/** One read-only snapshot for `cutover status`: flags, job counts, pg-boss queues, last reconcile. */
export async function getStatus(pool: Pool, table: LegacyTable, jobTypes: readonly string[], env: EnvOverride = {}): Promise<StatusReport> {
  const installed = await pgbossInstalled(pool);
  const [flags, jobs, reconcile, queues, flagMap] = await Promise.all([
    pool.query<{ jobType: string; basisPoints: number; killSwitch: boolean; fallbackToLegacy: boolean; updatedAt: Date; updatedBy: string | null }>(
      `SELECT "jobType", "basisPoints", "killSwitch", "fallbackToLegacy", "updatedAt", "updatedBy" FROM "RolloutFlag" ORDER BY "jobType"`,
    ),
    pool.query<{ type: string; engine: string; status: string; count: string }>(
      `SELECT ${typeSql(table)} AS type, j.engine::text AS engine, j.${table.col.status}::text AS status, count(*) AS count
         FROM ${table.ref} j GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
    ),
    pool.query<{ finishedAt: Date; findings: number }>(`SELECT "finishedAt", findings FROM "ReconcileRun" ORDER BY id DESC LIMIT 1`),
    queueSizes(pool, jobTypes.flatMap((type) => [type, deadLetterQueue(type)]), installed),
    readFlags(pool),
  ]);
  const last = reconcile.rows[0];
  return {
    flags: flags.rows.map((row) => ({
      jobType: row.jobType,
      percent: row.basisPoints / 100,
      killSwitch: row.killSwitch,
      fallbackToLegacy: row.fallbackToLegacy,
      updatedAt: row.updatedAt.toISOString(),
      updatedBy: row.updatedBy,
    })),
    routes: jobTypes.map((type) => effectiveRoute(type, flagMap, env)),
    envOverride: env,
    pgbossInstalled: installed,
    jobs: jobs.rows.map((row) => ({ ...row, count: Number(row.count) })),
    queues,
    lastReconcile: last ? { at: last.finishedAt.toISOString(), findings: last.findings } : null,
  };
}
