import type { PoolClient } from '../db/pool.js';
import type { LegacyTable } from '../table/table.js';
import { PGBOSS_SCHEMA } from '../pgboss/boss.js';

export interface UnstartedJob {
  id: string;
  retryCount: number;
  startAfter: Date;
  priority: number;
}

/**
 * pg-boss jobs of one queue not yet started (`created`, `retry`) that have a legacy row, locked
 * so no worker can fetch them while the batch moves (pg-boss fetches with SKIP LOCKED). A job
 * without a row is left where it is: deleting it would lose it.
 */
export async function lockUnstartedJobs(client: PoolClient, table: LegacyTable, name: string, size: number): Promise<UnstartedJob[]> {
  const { rows } = await client.query<UnstartedJob>(
    `SELECT b.id, b.retry_count AS "retryCount", b.start_after AS "startAfter", b.priority
       FROM ${PGBOSS_SCHEMA}.job b
      WHERE b.name = $1 AND b.state IN ('created', 'retry')
        AND EXISTS (SELECT 1 FROM ${table.ref} r WHERE r."pgbossJobId" = b.id)
      ORDER BY b.priority DESC, b.created_on
      LIMIT $2
      FOR UPDATE OF b SKIP LOCKED`,
    [name, size],
  );
  return rows;
}

/**
 * The rows of moved jobs become legacy PENDING again, with the attempts pg-boss made. They keep
 * `pgbossJobId`, the id the job had in pg-boss, so reconcile can tell if it ever runs there too.
 */
export async function flipToLegacy(client: PoolClient, table: LegacyTable, jobs: readonly UnstartedJob[]): Promise<void> {
  const { col } = table;
  await client.query(
    `UPDATE ${table.ref} AS j SET engine = 'LEGACY', "routeReason" = 'rolledback', ${col.status} = ${table.status.pending},
            ${col.attempts} = t.attempts, "runAfter" = GREATEST(t.start_after, now()), "workerId" = NULL, ${col.startedAt} = NULL,
            ${col.completedAt} = NULL, ${col.updatedAt} = now()
       FROM unnest($1::uuid[], $2::int[], $3::timestamptz[]) AS t(pgboss_id, attempts, start_after)
      WHERE j."pgbossJobId" = t.pgboss_id`,
    [jobs.map((job) => job.id), jobs.map((job) => job.retryCount), jobs.map((job) => job.startAfter)],
  );
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
      WHERE b.name = ANY($1::text[]) AND b.state IN ('created', 'retry')
        AND EXISTS (SELECT 1 FROM ${table.ref} r WHERE r."pgbossJobId" = b.id)
      GROUP BY 1`,
    [names],
  );
  return Object.fromEntries(rows.map((row) => [row.name, Number(row.n)]));
}
