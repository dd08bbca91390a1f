import type { Queryable } from '../db/pool.js';
import { archiveRef, quoteIdent, type LegacyTable } from './table.js';

/**
 * Where a success leaves the table (adapter `onSuccess: 'archive'`, the delayed_job rule), its
 * rows, once COMPLETED, move to cutover's archive table: copied first, then deleted as far as
 * copied, in one statement, so a row is always in exactly one of the two. A row the archive
 * already holds stays where it is (COMPLETED, for `cutover archive` to settle). `by` says
 * whether `ids` are row ids or pg-boss ids. Does nothing for a table whose successes stay.
 * Returns how many rows moved.
 */
export async function archiveSucceeded(db: Queryable, table: LegacyTable, ids: readonly string[], by: 'row' | 'pgboss'): Promise<number> {
  if (table.onSuccess !== 'archive' || !ids.length) return 0;
  const { col, status, ref } = table;
  const columns = [...table.columns].map(quoteIdent);
  const match = by === 'row' ? `j.${col.id} = ANY($1::${table.idType}[])` : `j."pgbossJobId" = ANY($1::uuid[])`;
  const { rows } = await db.query<{ moved: number }>(
    `WITH kept AS (
       INSERT INTO ${archiveRef(table)} (${columns.join(', ')})
       SELECT ${columns.map((c) => `j.${c}`).join(', ')} FROM ${ref} j WHERE ${match} AND j.${col.status} = ${status.completed}
       ON CONFLICT DO NOTHING RETURNING ${col.id} AS id),
     gone AS (DELETE FROM ${ref} j USING kept WHERE j.${col.id} = kept.id RETURNING 1)
     SELECT (SELECT count(*) FROM gone)::int AS moved`,
    [ids],
  );
  return rows[0]?.moved ?? 0;
}
