import type { LegacyTable } from '../table/table.js';
import { findingStatements, type FindingClass } from '../pgboss-schema/findings.js';
import { rowStatusForSql } from './states.js';

/**
 * One set-based query per finding class over the legacy table and pgboss.job (the statements
 * are pgboss-schema's, findings.ts); cached per table.
 */
export type { FindingClass };

const cache = new WeakMap<LegacyTable, Record<FindingClass, string>>();

export function findingQueries(table: LegacyTable): Record<FindingClass, string> {
  let queries = cache.get(table);
  if (!queries) cache.set(table, (queries = findingStatements(table, (stateColumn) => rowStatusForSql(table, stateColumn))));
  return queries;
}

/** Count and a sample, in one pass over the class's query. */
export function summarize(query: string, sample: number): string {
  return `WITH f AS MATERIALIZED (${query})
    SELECT (SELECT count(*) FROM f)::int AS count,
           COALESCE((SELECT json_agg(s) FROM (SELECT id, type, detail FROM f LIMIT ${sample}) s), '[]'::json) AS sample`;
}
