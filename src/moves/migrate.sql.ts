import type { PoolClient } from '../db/pool.js';
import { genericAdapter, type LegacyRow } from '../table/adapter.js';
import { backlogOrderSql, quoteIdent, typeSql, type LegacyTable } from '../table/table.js';

/** A backlog row with its age in seconds and, when it is not due yet, the time it is due. */
export type BacklogRecord = LegacyRow & { cutover_age: number; cutover_run_after: Date | null };

export interface BacklogFilter {
  types: readonly string[] | null;
  olderThanSeconds: number | null;
}

/**
 * Not quarantined: a row the mapper refused stays legacy and is not offered again. As an anti-join
 * this probes the quarantine's index for every row the scan passes (a batch passes the rows
 * other batches hold locked too), even while the quarantine is empty, as it nearly always is.
 * `lean` asks once per statement whether it is empty and probes only when it is not; the
 * OFFSET keeps the probe an index lookup per row instead of letting the planner hash the whole
 * quarantine for a batch that reads the head of the backlog.
 */
const notQuarantined = (table: LegacyTable, lean: boolean) =>
  lean
    ? `(NOT EXISTS (SELECT FROM "MigrationQuarantine") OR NOT EXISTS (SELECT FROM "MigrationQuarantine" q WHERE q."jobId" = j.${table.col.id}::text OFFSET 0))`
    : `NOT EXISTS (SELECT 1 FROM "MigrationQuarantine" q WHERE q."jobId" = j.${table.col.id}::text)`;

const backlogWhere = (table: LegacyTable, lean = false) => `
  j.${table.col.status} = ${table.status.pending} AND j.engine = 'LEGACY'
  AND ($1::text[] IS NULL OR ${typeSql(table)} = ANY($1::text[]))
  AND ($2::float8 IS NULL OR j.${table.col.createdAt} <= (now() AT TIME ZONE 'UTC') - make_interval(secs => $2::float8))
  AND ${notQuarantined(table, lean)}`;

/**
 * The columns migrate reads of a backlog row, null for all of them. An adapter's toJob is given
 * the whole row (its contract), so only for the generic adapter, whose toJob reads `type`,
 * `payload` and `priority`, is the list known: sending and parsing the rest (timestamps made
 * into Dates, run bookkeeping) costs more than validating the payload does.
 */
export function backlogColumns(table: LegacyTable): string[] | null {
  if (table.adapter !== genericAdapter) return null;
  const { names } = table;
  const wanted = [names.id, 'type', 'payload', 'priority', names.attempts, names.maxAttempts];
  return [...new Set(wanted.filter((name): name is string => name !== undefined && table.columns.has(name)))];
}

/**
 * What migrate reads of a backlog row, plus its age (folded into the pg-boss priority) and its
 * due time only while it lies ahead. A row already due is due now on pg-boss too: carried as a
 * past start_after it would also set pg-boss's keep_until (start_after + the queue's retention,
 * 14 days) in the past for a row older than that, and pg-boss's retention sweep deletes a
 * created job past its keep_until before anyone runs it. Decided on the database's clock, the
 * one the legacy claim's `due <= now()` uses.
 */
const selectList = (table: LegacyTable) => {
  const columns = backlogColumns(table);
  // date_part is float8 already; EXTRACT computes in numeric (Postgres 14+) only to be cast back.
  return `${columns ? columns.map((name) => `j.${quoteIdent(name)}`).join(', ') : 'j.*'},
    date_part('epoch', (now() AT TIME ZONE 'UTC') - j.${table.col.createdAt}) AS cutover_age,
    CASE WHEN j.${table.due} > now() THEN j.${table.due} END AS cutover_run_after`;
};

/**
 * One batch of the backlog, locked: a legacy runner's claim skips these rows while the batch
 * is moved, and a second migrate run takes other rows. Highest priority, then oldest, first.
 */
export async function lockBacklogBatch(client: PoolClient, table: LegacyTable, filter: BacklogFilter, size: number): Promise<BacklogRecord[]> {
  const { rows } = await client.query<BacklogRecord>(
    `SELECT ${selectList(table)} FROM ${table.ref} j
      WHERE ${backlogWhere(table, true)}
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

/** Hands the rows to pg-boss: `ids[i]` is now pg-boss's job `pgbossIds[i]`. */
export async function flipToPgboss(client: PoolClient, table: LegacyTable, ids: readonly string[], pgbossIds: readonly string[]): Promise<void> {
  if (!ids.length) return;
  await client.query(
    `UPDATE ${table.ref} AS j SET engine = 'PGBOSS', "routeReason" = 'migrated', "pgbossJobId" = t.pgboss_id, ${table.col.updatedAt} = now()
       FROM unnest($1::${table.idType}[], $2::uuid[]) AS t(id, pgboss_id)
      WHERE j.${table.col.id} = t.id`,
    [ids, pgbossIds],
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
