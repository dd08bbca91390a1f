import type { Pool } from '../db/pool.js';
import { archiveRef, type LegacyTable } from '../table/table.js';
import { findingStatements, type FindingClass } from '../pgboss-schema/findings.js';
import { rowStatusForSql } from './states.js';

/**
 * One set-based query per finding class over the legacy table and pgboss.job (the statements
 * are pgboss-schema's, findings.ts); cached per table.
 */
export type { FindingClass };

const cache = new WeakMap<LegacyTable, { plain: Record<FindingClass, string>; archived: Record<FindingClass, string> }>();

/**
 * The finding queries; with `archive` (the archive table can be read, `archiveAccess`), a
 * pg-boss job whose tracking row `cutover archive` moved is no orphan: pg-boss keeps finished
 * jobs for days after their rows may be archived.
 */
export function findingQueries(table: LegacyTable, archive = false): Record<FindingClass, string> {
  let queries = cache.get(table);
  if (!queries) {
    const plain = findingStatements(table, (stateColumn) => rowStatusForSql(table, stateColumn));
    queries = { plain, archived: { ...plain, orphan: `WITH candidate AS MATERIALIZED (${plain.orphan})
      SELECT c.id, c.type, c.detail FROM candidate c WHERE NOT EXISTS (${inArchive(table, 'c.id')})` } };
    cache.set(table, queries);
  }
  return archive ? queries.archived : queries.plain;
}

/**
 * The archive's rows of the pg-boss job whose id (text) is `jobId`. On a uuid table a row's
 * pgbossJobId is its own id (table/ids.ts pgbossIdFor), so the archive's primary key finds it;
 * any other table's ids map to the job's through a hash, and the archive, which has no other
 * index, is read through its pgbossJobId (one hashed pass per statement, not a scan per job).
 */
export function inArchive(table: LegacyTable, jobId: string): string {
  const match = table.idType === 'uuid' ? `a.${table.col.id} = ${jobId}::uuid` : `a."pgbossJobId" = ${jobId}::uuid`;
  return `SELECT 1 FROM ${archiveRef(table)} a WHERE ${match}`;
}

/**
 * Whether reconcile can tell archived jobs from orphans: the archive table exists (migration
 * 0006 or `cutover init` made it) and this connection may read it. One query per run.
 */
export async function archiveAccess(pool: Pick<Pool, 'query'>, table: LegacyTable): Promise<'readable' | 'absent' | 'unreadable'> {
  const { rows } = await pool.query<{ exists: boolean; readable: boolean | null }>(
    `SELECT to_regclass($1) IS NOT NULL AS exists, CASE WHEN to_regclass($1) IS NOT NULL THEN has_table_privilege(to_regclass($1), 'SELECT') END AS readable`,
    [archiveRef(table)],
  );
  const row = rows[0]!;
  return !row.exists ? 'absent' : row.readable ? 'readable' : 'unreadable';
}

/**
 * The orphan class's count and sample, and how many jobs it left out as archived, in one
 * pass over the orphan query (`findingQueries(table).orphan`, without the archive).
 */
export function summarizeOrphans(table: LegacyTable, sample: number): string {
  return `WITH candidate AS MATERIALIZED (${findingQueries(table).orphan}),
    f AS MATERIALIZED (SELECT c.id, c.type, c.detail FROM candidate c WHERE NOT EXISTS (${inArchive(table, 'c.id')}))
    SELECT (SELECT count(*) FROM f)::int AS count, ((SELECT count(*) FROM candidate) - (SELECT count(*) FROM f))::int AS archived,
           COALESCE((SELECT json_agg(s) FROM (SELECT id, type, detail FROM f LIMIT ${sample}) s), '[]'::json) AS sample`;
}

/** Count and a sample, in one pass over the class's query. */
export function summarize(query: string, sample: number): string {
  return `WITH f AS MATERIALIZED (${query})
    SELECT (SELECT count(*) FROM f)::int AS count,
           COALESCE((SELECT json_agg(s) FROM (SELECT id, type, detail FROM f LIMIT ${sample}) s), '[]'::json) AS sample`;
}
