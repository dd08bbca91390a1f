import type { PoolClient } from '../db/pool.js';
import type { LegacyTable } from '../table/table.js';
import { activeJobs as activeJobsSql, countUnstarted as countUnstartedSql, lockUnstartedJobs as lockUnstartedJobsSql, lockUntrackedUnstartedJobs as lockUntrackedSql } from '../pgboss-schema/moves.js';

export interface UnstartedJob {
  id: string;
  /**
   * Attempts made: pg-boss's retry_count, plus the run that ended a job now waiting in `retry`
   * (a claim adds that run to retry_count only when the job is fetched again).
   */
  attempts: number;
  startAfter: Date;
}

/**
 * pg-boss jobs of one queue not yet started (`created`, `retry`) whose legacy row is still
 * waiting, locked so no worker can fetch them while the batch moves (pg-boss fetches with SKIP
 * LOCKED). A job without such a row is left where it is: deleting it would lose it.
 */
export async function lockUnstartedJobs(client: PoolClient, table: LegacyTable, name: string, size: number): Promise<UnstartedJob[]> {
  const { rows } = await client.query<UnstartedJob>(lockUnstartedJobsSql(table), [name, size]);
  return rows;
}

export interface UntrackedUnstartedJob extends UnstartedJob {
  name: string;
  data: unknown;
  /** pg-boss's priority. */
  priority: number;
  retryLimit: number;
  createdOn: Date;
}

/** pg-boss jobs of one queue not yet started that have no row at all, locked as lockUnstartedJobs locks. */
export async function lockUntrackedUnstartedJobs(client: PoolClient, table: LegacyTable, name: string, size: number): Promise<UntrackedUnstartedJob[]> {
  const { rows } = await client.query<UntrackedUnstartedJob>(lockUntrackedSql(table), [name, size]);
  return rows;
}

export async function activeJobs(client: Pick<PoolClient, 'query'>, names: readonly string[]): Promise<{ id: string; name: string }[]> {
  const { rows } = await client.query<{ id: string; name: string }>(activeJobsSql, [names]);
  return rows;
}

export async function countUnstarted(client: Pick<PoolClient, 'query'>, table: LegacyTable, names: readonly string[]): Promise<Record<string, number>> {
  const { rows } = await client.query<{ name: string; n: string }>(countUnstartedSql(table), [names]);
  return Object.fromEntries(rows.map((row) => [row.name, Number(row.n)]));
}
