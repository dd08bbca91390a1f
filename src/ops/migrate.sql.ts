import type { PoolClient } from '../db/pool.js';

export interface BacklogRow {
  id: string;
  type: string;
  payload: unknown;
  priority: number;
  attempts: number;
  maxAttempts: number;
  ageSeconds: number;
}

export interface BacklogFilter {
  types: readonly string[] | null;
  olderThanSeconds: number | null;
}

const backlogWhere = `
  j.status = 'PENDING' AND j.engine = 'LEGACY'
  AND ($1::text[] IS NULL OR j.type = ANY($1::text[]))
  AND ($2::float8 IS NULL OR j."createdAt" <= (now() AT TIME ZONE 'UTC') - make_interval(secs => $2::float8))
  AND NOT EXISTS (SELECT 1 FROM "MigrationQuarantine" q WHERE q."jobId" = j.id::text)`;

/**
 * One batch of the backlog, locked: a legacy runner's claim skips these rows while the batch
 * is moved, and a second migrate run takes other rows. Highest priority, then oldest, first.
 */
export async function lockBacklogBatch(client: PoolClient, filter: BacklogFilter, size: number): Promise<BacklogRow[]> {
  const { rows } = await client.query<BacklogRow>(
    `SELECT j.id, j.type, j.payload, j.priority, j.attempts, j."maxAttempts",
            EXTRACT(EPOCH FROM ((now() AT TIME ZONE 'UTC') - j."createdAt"))::float8 AS "ageSeconds"
       FROM "Job" j
      WHERE ${backlogWhere}
      ORDER BY j.priority DESC, j."createdAt"
      LIMIT $3
      FOR UPDATE SKIP LOCKED`,
    [filter.types, filter.olderThanSeconds, size],
  );
  return rows;
}

/** Read-only page of the backlog for --dry-run, by id (keyset), nothing locked. */
export async function readBacklogPage(client: Pick<PoolClient, 'query'>, filter: BacklogFilter, afterId: string | null, size: number): Promise<Omit<BacklogRow, 'ageSeconds'>[]> {
  const { rows } = await client.query<Omit<BacklogRow, 'ageSeconds'>>(
    `SELECT j.id, j.type, j.payload, j.priority, j.attempts, j."maxAttempts" FROM "Job" j
      WHERE ${backlogWhere} AND ($4::uuid IS NULL OR j.id > $4::uuid)
      ORDER BY j.id LIMIT $3`,
    [filter.types, filter.olderThanSeconds, size, afterId],
  );
  return rows;
}

export async function countBacklog(client: Pick<PoolClient, 'query'>, filter: BacklogFilter): Promise<number> {
  const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM "Job" j WHERE ${backlogWhere}`, [filter.types, filter.olderThanSeconds]);
  return Number(rows[0]?.n ?? 0);
}

export async function flipToPgboss(client: PoolClient, moved: readonly { id: string; pgbossId: string }[]): Promise<void> {
  if (!moved.length) return;
  await client.query(
    `UPDATE "Job" AS j SET engine = 'PGBOSS', "routeReason" = 'migrated', "pgbossJobId" = t.pgboss_id, "updatedAt" = now()
       FROM unnest($1::uuid[], $2::uuid[]) AS t(id, pgboss_id)
      WHERE j.id = t.id`,
    [moved.map((m) => m.id), moved.map((m) => m.pgbossId)],
  );
}

export async function quarantine(client: PoolClient, rows: readonly { jobId: string; jobType: string; reason: string }[]): Promise<void> {
  if (!rows.length) return;
  await client.query(
    `INSERT INTO "MigrationQuarantine" ("jobId", "jobType", reason)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
     ON CONFLICT ("jobId") DO UPDATE SET reason = EXCLUDED.reason, at = now()`,
    [rows.map((r) => r.jobId), rows.map((r) => r.jobType), rows.map((r) => r.reason)],
  );
}
