import { PGBOSS_SCHEMA } from '../pgboss/boss.js';
import { rowStatusForSql } from './states.js';

/**
 * One set-based query per finding class over `Job` and pgboss.job. pgboss.job's key is
 * (name, id) and it is partitioned by name, so every join goes through both columns.
 * Parameters: $1 job types (queue names), $2 grace seconds for in-flight transitions,
 * $3/$4 per-type timeouts (for stuck). Each returns `id` (the row's id, or the pg-boss id for
 * orphans) and `detail`.
 */
export type FindingClass = 'lost' | 'orphan' | 'drift' | 'stuck' | 'double';

const settled = `j."updatedAt" < (now() AT TIME ZONE 'UTC') - make_interval(secs => $2::float8)`;

export const findingQueries: Record<FindingClass, string> = {
  // The row says pg-boss owns an unfinished job, pg-boss has no such job. Finished rows whose
  // pg-boss job retention deleted are not lost: only PENDING/RUNNING rows count.
  lost: `
    SELECT j.id::text AS id, j.type, 'row ' || j.status || ' on PGBOSS, no pg-boss job ' || j."pgbossJobId" AS detail
      FROM "Job" j
     WHERE j.engine = 'PGBOSS' AND j.status IN ('PENDING', 'RUNNING') AND j.type = ANY($1::text[]) AND ${settled}
       AND NOT EXISTS (SELECT 1 FROM ${PGBOSS_SCHEMA}.job b WHERE b.name = j.type AND b.id = j."pgbossJobId")`,

  // A pg-boss job in a cutover queue with no row (sent around the RolloutManager).
  orphan: `
    SELECT b.id::text AS id, b.name AS type, 'pg-boss job ' || b.state || ' with no Job row' AS detail
      FROM ${PGBOSS_SCHEMA}.job b
     WHERE b.name = ANY($1::text[]) AND b.created_on < now() - make_interval(secs => $2::float8)
       AND NOT EXISTS (SELECT 1 FROM "Job" j WHERE j."pgbossJobId" = b.id)`,

  // Both exist, states disagree beyond the grace period. Split so millions of agreeing rows
  // cost one scan of pg-boss's table and no join: (a) rows COMPLETED (nearly all, in steady
  // state) can only disagree with a pg-boss job that is not completed, which are few; (b) the
  // few rows not COMPLETED come from the claim index and are checked one by one.
  drift: `
    SELECT j.id::text AS id, j.type, 'row ' || j.status || ', pg-boss ' || b.state AS detail
      FROM ${PGBOSS_SCHEMA}.job b
      JOIN "Job" j ON j."pgbossJobId" = b.id AND j.type = b.name
     WHERE b.name = ANY($1::text[]) AND b.state <> 'completed'
       AND j.engine = 'PGBOSS' AND j.status = 'COMPLETED' AND ${settled}
    UNION ALL
    SELECT j.id::text AS id, j.type, 'row ' || j.status || ', pg-boss ' || b.state AS detail
      FROM "Job" j
      JOIN ${PGBOSS_SCHEMA}.job b ON b.name = j.type AND b.id = j."pgbossJobId"
     WHERE j.engine = 'PGBOSS' AND j.status IN ('PENDING', 'RUNNING', 'FAILED') AND j.type = ANY($1::text[]) AND ${settled}
       AND j.status::text <> ${rowStatusForSql('b.state')}
       -- a fetched job whose worker has not yet marked the row is in flight, not drift
       AND NOT (b.state = 'active' AND j.status = 'PENDING' AND b.started_on > now() - make_interval(secs => $2::float8))`,

  // Running past the type's timeout plus grace, on either engine.
  stuck: `
    SELECT j.id::text AS id, j.type, 'legacy RUNNING since ' || j."startedAt" AS detail
      FROM "Job" j JOIN unnest($3::text[], $4::int[]) AS t(type, timeout) ON t.type = j.type
     WHERE j.engine = 'LEGACY' AND j.status = 'RUNNING' AND j.type = ANY($1::text[])
       AND j."startedAt" < (now() AT TIME ZONE 'UTC') - make_interval(secs => t.timeout + $2::float8)
    UNION ALL
    SELECT b.id::text, b.name, 'pg-boss active since ' || b.started_on
      FROM ${PGBOSS_SCHEMA}.job b JOIN unnest($3::text[], $4::int[]) AS t(type, timeout) ON t.type = b.name
     WHERE b.name = ANY($1::text[]) AND b.state = 'active' AND b.started_on < now() - make_interval(secs => t.timeout + $2::float8)`,

  // One logical job that ran on both engines: a legacy run (or its retry chain's) finished or
  // running, and a pg-boss run of the same id finished or running.
  double: `
    SELECT j.id::text AS id, j.type, 'legacy ' || j.status || ' and pg-boss ' || b.state AS detail
      FROM "Job" j
      JOIN ${PGBOSS_SCHEMA}.job b ON b.name = j.type AND b.id = COALESCE(j."originalJobId", j.id)
     WHERE j.engine = 'LEGACY' AND j.status IN ('RUNNING', 'COMPLETED') AND j.type = ANY($1::text[]) AND ${settled}
       AND b.state IN ('active', 'completed')`,
};

/** Count and a sample, in one pass over the class's query. */
export function summarize(query: string, sample: number): string {
  return `WITH f AS MATERIALIZED (${query})
    SELECT (SELECT count(*) FROM f)::int AS count,
           COALESCE((SELECT json_agg(s) FROM (SELECT id, type, detail FROM f LIMIT ${sample}) s), '[]'::json) AS sample`;
}
