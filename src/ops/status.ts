import type { Pool } from '../db/pool.js';
import { typeSql, type LegacyTable } from '../table/table.js';
import { PGBOSS_SCHEMA } from '../pgboss/boss.js';
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
  jobs: JobCount[];
  /** pg-boss jobs per queue and state (dead letter queues end in `.dlq`); empty before pg-boss is installed. */
  queues: QueueSize[];
  lastReconcile: { at: string; findings: number } | null;
}

async function queueSizes(pool: Pool, queues: readonly string[]): Promise<QueueSize[]> {
  const { rows: installed } = await pool.query<{ present: boolean }>(`SELECT to_regclass('${PGBOSS_SCHEMA}.job') IS NOT NULL AS present`);
  if (!installed[0]?.present) return [];
  const { rows } = await pool.query<{ queue: string; state: string; count: string }>(
    `SELECT name AS queue, state::text AS state, count(*) AS count FROM ${PGBOSS_SCHEMA}.job WHERE name = ANY($1::text[]) GROUP BY 1, 2 ORDER BY 1, 2`,
    [queues],
  );
  return rows.map((row) => ({ ...row, count: Number(row.count) }));
}

/** One read-only snapshot for `cutover status`: flags, job counts, pg-boss queues, last reconcile. */
export async function getStatus(pool: Pool, table: LegacyTable, jobTypes: readonly string[]): Promise<StatusReport> {
  const [flags, jobs, reconcile, queues] = await Promise.all([
    pool.query<{ jobType: string; basisPoints: number; killSwitch: boolean; fallbackToLegacy: boolean; updatedAt: Date; updatedBy: string | null }>(
      `SELECT "jobType", "basisPoints", "killSwitch", "fallbackToLegacy", "updatedAt", "updatedBy" FROM "RolloutFlag" ORDER BY "jobType"`,
    ),
    pool.query<{ type: string; engine: string; status: string; count: string }>(
      `SELECT ${typeSql(table)} AS type, j.engine::text AS engine, j.${table.col.status}::text AS status, count(*) AS count
         FROM ${table.ref} j GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
    ),
    pool.query<{ finishedAt: Date; findings: number }>(`SELECT "finishedAt", findings FROM "ReconcileRun" ORDER BY id DESC LIMIT 1`),
    queueSizes(pool, jobTypes.flatMap((type) => [type, deadLetterQueue(type)])),
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
    jobs: jobs.rows.map((row) => ({ ...row, count: Number(row.count) })),
    queues,
    lastReconcile: last ? { at: last.finishedAt.toISOString(), findings: last.findings } : null,
  };
}
