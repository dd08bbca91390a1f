import type { PoolClient } from '../db/pool.js';
import type { LegacyRow } from '../table/adapter.js';
import { backlogOrderSql, typeSql, type LegacyTable } from '../table/table.js';

/** A backlog row with its age and job type as the table says them. */
export type BacklogRecord = LegacyRow & { cutover_type: string; cutover_age: number };

export interface BacklogFilter {
  types: readonly string[] | null;
  olderThanSeconds: number | null;
}

const backlogWhere = (table: LegacyTable) => `
  j.${table.col.status} = ${table.status.pending} AND j.engine = 'LEGACY'
  AND ($1::text[] IS NULL OR ${typeSql(table)} = ANY($1::text[]))
  AND ($2::float8 IS NULL OR j.${table.col.createdAt} <= (now() AT TIME ZONE 'UTC') - make_interval(secs => $2::float8))
  AND NOT EXISTS (SELECT 1 FROM "MigrationQuarantine" q WHERE q."jobId" = j.${table.col.id}::text)`;

const selectList = (table: LegacyTable) =>
  `j.*, ${typeSql(table)} AS cutover_type, EXTRACT(EPOCH FROM ((now() AT TIME ZONE 'UTC') - j.${table.col.createdAt}))::float8 AS cutover_age`;

/**
 * One batch of the backlog, locked: a legacy runner's claim skips these rows while the batch
 * is moved, and a second migrate run takes other rows. Highest priority, then oldest, first.
 */
export async function lockBacklogBatch(client: PoolClient, table: LegacyTable, filter: BacklogFilter, size: number): Promise<BacklogRecord[]> {
  const { rows } = await client.query<BacklogRecord>(
    `SELECT ${selectList(table)} FROM ${table.ref} j
      WHERE ${backlogWhere(table)}
      ORDER BY ${backlogOrderSql(table)}
      LIMIT $3
      FOR UPDATE SKIP LOCKED`,
    [filter.types, filter.olderThanSeconds, size],
  );
  return rows;
}

/** Read-only page of the backlog for --dry-run, by id (keyset), nothing locked. */
export async function readBacklogPage(client: Pick<PoolClient, 'query'>, table: LegacyTable, filter: BacklogFilter, afterId: string | null, size: number): Promise<BacklogRecord[]> {
  const { rows } = await client.query<BacklogRecord>(
    `SELECT ${selectList(table)} FROM ${table.ref} j
      WHERE ${backlogWhere(table)} AND ($4::${table.idType} IS NULL OR j.${table.col.id} > $4::${table.idType})
      ORDER BY j.${table.col.id} LIMIT $3`,
    [filter.types, filter.olderThanSeconds, size, afterId],
  );
  return rows;
}

export async function countBacklog(client: Pick<PoolClient, 'query'>, table: LegacyTable, filter: BacklogFilter): Promise<number> {
  const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table.ref} j WHERE ${backlogWhere(table)}`, [filter.types, filter.olderThanSeconds]);
  return Number(rows[0]?.n ?? 0);
}

export async function flipToPgboss(client: PoolClient, table: LegacyTable, moved: readonly { id: string; pgbossId: string }[]): Promise<void> {
  if (!moved.length) return;
  await client.query(
    `UPDATE ${table.ref} AS j SET engine = 'PGBOSS', "routeReason" = 'migrated', "pgbossJobId" = t.pgboss_id, ${table.col.updatedAt} = now()
       FROM unnest($1::${table.idType}[], $2::uuid[]) AS t(id, pgboss_id)
      WHERE j.${table.col.id} = t.id`,
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
