import type { PoolClient } from '../db/pool.js';
import type { LegacyTable } from '../table/table.js';
import { PGBOSS_SCHEMA } from '../pgboss/boss.js';

export interface UnstartedJob {
  id: string;
  /**
   * Attempts made: pg-boss's retry_count, plus the run that ended a job now waiting in `retry`
   * (a claim adds that run to retry_count only when the job is fetched again).
   */
  attempts: number;
  startAfter: Date;
}

/** The job's row is on pg-boss and still waiting: what flipToLegacy (table/handback) will flip. */
const waitingRow = (table: LegacyTable) =>
  `EXISTS (SELECT 1 FROM ${table.ref} r WHERE r."pgbossJobId" = b.id AND r.engine = 'PGBOSS'
             AND r.${table.col.status} IN (${table.status.pending}, ${table.status.running}))`;

/**
 * pg-boss jobs of one queue not yet started (`created`, `retry`) whose legacy row is still
 * waiting, locked so no worker can fetch them while the batch moves (pg-boss fetches with SKIP
 * LOCKED). A job without such a row is left where it is: deleting it would lose it.
 */
export async function lockUnstartedJobs(client: PoolClient, table: LegacyTable, name: string, size: number): Promise<UnstartedJob[]> {
  const { rows } = await client.query<UnstartedJob>(
    `SELECT b.id, b.retry_count + (b.started_on IS NOT NULL)::int AS attempts, b.start_after AS "startAfter"
       FROM ${PGBOSS_SCHEMA}.job b
      WHERE b.name = $1 AND b.state IN ('created', 'retry') AND ${waitingRow(table)}
      ORDER BY b.priority DESC, b.created_on
      LIMIT $2
      FOR UPDATE OF b SKIP LOCKED`,
    [name, size],
  );
  return rows;
}

export async function activeJobs(client: Pick<PoolClient, 'query'>, names: readonly string[]): Promise<{ id: string; name: string }[]> {
  const { rows } = await client.query<{ id: string; name: string }>(
    `SELECT id, name FROM ${PGBOSS_SCHEMA}.job WHERE name = ANY($1::text[]) AND state = 'active' ORDER BY started_on`,
    [names],
  );
  return rows;
}

export async function countUnstarted(client: Pick<PoolClient, 'query'>, table: LegacyTable, names: readonly string[]): Promise<Record<string, number>> {
  const { rows } = await client.query<{ name: string; n: string }>(
    `SELECT b.name, count(*) AS n FROM ${PGBOSS_SCHEMA}.job b
      WHERE b.name = ANY($1::text[]) AND b.state IN ('created', 'retry') AND ${waitingRow(table)}
      GROUP BY 1`,
    [names],
  );
  return Object.fromEntries(rows.map((row) => [row.name, Number(row.n)]));
}
