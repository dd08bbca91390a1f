import type { Pool } from '../db/pool.js';

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

export interface StatusReport {
  flags: FlagState[];
  jobs: JobCount[];
  lastReconcile: { at: string; findings: number } | null;
}

/** One read-only snapshot for `cutover status`: flags, job counts, last reconcile. */
export async function getStatus(pool: Pool): Promise<StatusReport> {
  const [flags, jobs, reconcile] = await Promise.all([
    pool.query<{ jobType: string; basisPoints: number; killSwitch: boolean; fallbackToLegacy: boolean; updatedAt: Date; updatedBy: string | null }>(
      `SELECT "jobType", "basisPoints", "killSwitch", "fallbackToLegacy", "updatedAt", "updatedBy" FROM "RolloutFlag" ORDER BY "jobType"`,
    ),
    pool.query<{ type: string; engine: string; status: string; count: string }>(
      `SELECT type, engine::text AS engine, status::text AS status, count(*) AS count
         FROM "Job" GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
    ),
    pool.query<{ finishedAt: Date; findings: number }>(`SELECT "finishedAt", findings FROM "ReconcileRun" ORDER BY id DESC LIMIT 1`),
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
    lastReconcile: last ? { at: last.finishedAt.toISOString(), findings: last.findings } : null,
  };
}
