import type { Pool } from '../../src/db/pool.js';

export interface OwnershipReport {
  rows: number;
  pgbossRows: number;
  pgbossJobs: number;
  /** PGBOSS rows without their pg-boss job. */
  lost: number;
  /** LEGACY rows that also have a pg-boss job. */
  inBoth: number;
  /** pg-boss jobs without a row. */
  orphans: number;
}

/** Who owns each job: exactly one system, and pg-boss only with a row that says so. */
export async function ownership(pool: Pool): Promise<OwnershipReport> {
  const { rows } = await pool.query<Record<keyof OwnershipReport, string>>(`
    SELECT (SELECT count(*) FROM "Job") AS rows,
           (SELECT count(*) FROM "Job" WHERE engine = 'PGBOSS') AS "pgbossRows",
           (SELECT count(*) FROM pgboss.job b WHERE b.name NOT LIKE '%.dlq') AS "pgbossJobs",
           (SELECT count(*) FROM "Job" j WHERE j.engine = 'PGBOSS'
               AND NOT EXISTS (SELECT 1 FROM pgboss.job b WHERE b.name = j.type AND b.id = j."pgbossJobId")) AS lost,
           (SELECT count(*) FROM "Job" j WHERE j.engine = 'LEGACY'
               AND EXISTS (SELECT 1 FROM pgboss.job b WHERE b.name = j.type AND b.id = j.id)) AS "inBoth",
           (SELECT count(*) FROM pgboss.job b WHERE b.name NOT LIKE '%.dlq'
               AND NOT EXISTS (SELECT 1 FROM "Job" j WHERE j."pgbossJobId" = b.id)) AS orphans`);
  const row = rows[0]!;
  return Object.fromEntries(Object.entries(row).map(([k, v]) => [k, Number(v)])) as unknown as OwnershipReport;
}
