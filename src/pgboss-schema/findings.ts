// Relies on (pg-boss 12.38): pgboss.job's key (name, id), its partitioning by name (every
// join goes through both columns), and its columns name, id, state, created_on and
// started_on; the state values 'created', 'retry', 'active' and 'completed'; that a job is
// 'active' from its fetch until it is settled (started_on set by the fetch).
import { typeSql, type LegacyTable } from '../table/table.js';
import { PGBOSS_SCHEMA } from './schema.js';

/**
 * Reconcile's finding classes (reconcile/reconcile.sql.ts), one set-based query each over the
 * legacy table and pgboss.job. Parameters: $1 job types (queue names), $2 grace seconds for
 * in-flight transitions, $3/$4 per-type timeouts (for stuck). Each returns `id` (the row's
 * id, or the pg-boss id for orphans) and `detail`.
 */
export type FindingClass = 'lost' | 'orphan' | 'drift' | 'stuck' | 'double';

/**
 * Queues with jobs up to which orphans are found queue by queue. Each such queue costs a pass
 * over the legacy table's pgbossJobId index: on 1M rows each side, 0.25 CPU-s for one queue
 * where the hash anti-join takes 1.0-1.3, and about as much as it at ten queues of 100k. Four
 * leaves room for a legacy table larger than pg-boss's.
 */
const MERGED_QUEUES = 4;

/**
 * The finding queries of `table`. `rowStatusOf` is the legacy status a pg-boss state column
 * maps to, as SQL (reconcile/states.ts holds the mapping).
 */
export function findingStatements(table: LegacyTable, rowStatusOf: (stateColumn: string) => string): Record<FindingClass, string> {
  const { col, status, ref } = table;
  const type = typeSql(table);
  const settled = `j.${col.updatedAt} < (now() AT TIME ZONE 'UTC') - make_interval(secs => $2::float8)`;
  // The pg-boss id a legacy row's job has or had: its own when it went through pg-boss (kept
  // across rollback), else its chain's first row's; on a uuid table a job sent to pg-boss
  // around cutover may also carry the row's own id.
  // A CASE, not a join: nearly every row has no chain, and a self-join would scan the table twice.
  const ownId = table.idType === 'uuid' ? `, j.${col.id}` : '';
  const original = col.originalJobId;
  const pgbossIdOf = original
    ? `CASE WHEN j.${original} IS NULL THEN COALESCE(j."pgbossJobId"${ownId})
    ELSE COALESCE((SELECT root."pgbossJobId" FROM ${ref} root WHERE root.${col.id} = j.${original})${table.idType === 'uuid' ? `, j.${original}` : ''}) END`
    : `COALESCE(j."pgbossJobId"${ownId})`;
  const orphanDetail = `b.id::text AS id, b.name AS type, 'pg-boss job ' || b.state || ' with no legacy row' AS detail`;
  const orphanOf = `b.created_on < now() - make_interval(secs => $2::float8) AND NOT EXISTS (SELECT 1 FROM "RolloutFinal" f WHERE f."jobType" = b.name AND NOT f.tracking)`;
  return {
    // The row says pg-boss owns an unfinished job, pg-boss has no such job. Finished rows whose
    // pg-boss job retention deleted are not lost: only PENDING/RUNNING rows count.
    lost: `
      SELECT j.${col.id}::text AS id, ${type} AS type, 'row ' || j.${col.status} || ' on PGBOSS, no pg-boss job ' || j."pgbossJobId" AS detail
        FROM ${ref} j
       WHERE j.engine = 'PGBOSS' AND j.${col.status} IN (${status.pending}, ${status.running}) AND ${type} = ANY($1::text[]) AND ${settled}
         AND NOT EXISTS (SELECT 1 FROM ${PGBOSS_SCHEMA}.job b WHERE b.name = ${type} AND b.id = j."pgbossJobId")`,

    // A pg-boss job in a cutover queue with no row (sent around the RolloutManager). A type
    // finalized with tracking off has no rows by design: its jobs are pg-boss's alone.
    // Queue by queue, pg-boss's (name, id) key yields the queue's ids in order, so the anti-join
    // merges two index scans instead of hashing every id of both tables, at a fraction of the
    // cost; but each queue with jobs reads the whole pgbossJobId index once. Past a few such
    // queues one hash anti-join over them all costs less (only one branch runs).
    orphan: `
      WITH queues AS MATERIALIZED (
        SELECT DISTINCT t.name FROM unnest($1::text[]) AS t(name) WHERE EXISTS (SELECT 1 FROM ${PGBOSS_SCHEMA}.job x WHERE x.name = t.name)
      )
      SELECT ${orphanDetail}
        FROM queues q
        CROSS JOIN LATERAL (SELECT o.id FROM ${PGBOSS_SCHEMA}.job o WHERE o.name = q.name AND NOT EXISTS (SELECT 1 FROM ${ref} j WHERE j."pgbossJobId" = o.id)) o
        JOIN ${PGBOSS_SCHEMA}.job b ON b.name = q.name AND b.id = o.id
       WHERE (SELECT count(*) FROM queues) <= ${MERGED_QUEUES} AND ${orphanOf}
      UNION ALL
      SELECT ${orphanDetail}
        FROM ${PGBOSS_SCHEMA}.job b
       WHERE (SELECT count(*) FROM queues) > ${MERGED_QUEUES} AND b.name = ANY($1::text[]) AND ${orphanOf}
         AND NOT EXISTS (SELECT 1 FROM ${ref} j WHERE j."pgbossJobId" = b.id)`,

    // Both exist, states disagree beyond the grace period. Split so millions of agreeing rows
    // cost one scan of pg-boss's table and no join: (a) rows COMPLETED (nearly all, in steady
    // state) can only disagree with a pg-boss job that is not completed, which are few; (b) the
    // few rows not COMPLETED come from the claim index and are checked one by one.
    drift: `
      SELECT j.${col.id}::text AS id, ${type} AS type, 'row ' || j.${col.status} || ', pg-boss ' || b.state AS detail
        FROM ${PGBOSS_SCHEMA}.job b
        JOIN ${ref} j ON j."pgbossJobId" = b.id AND ${type} = b.name
       WHERE b.name = ANY($1::text[]) AND b.state <> 'completed'
         AND j.engine = 'PGBOSS' AND j.${col.status} = ${status.completed} AND ${settled}
      UNION ALL
      SELECT j.${col.id}::text AS id, ${type} AS type, 'row ' || j.${col.status} || ', pg-boss ' || b.state AS detail
        FROM ${ref} j
        JOIN ${PGBOSS_SCHEMA}.job b ON b.name = ${type} AND b.id = j."pgbossJobId"
       WHERE j.engine = 'PGBOSS' AND j.${col.status} IN (${status.pending}, ${status.running}, ${status.failed}) AND ${type} = ANY($1::text[]) AND ${settled}
         AND j.${col.status}::text <> ${rowStatusOf('b.state')}
         -- a fetched job whose worker has not yet marked the row is in flight, not drift
         AND NOT (b.state = 'active' AND j.${col.status} = ${status.pending} AND b.started_on > now() - make_interval(secs => $2::float8))`,

    // Running past the type's timeout plus grace, on either engine.
    stuck: `
      SELECT j.${col.id}::text AS id, ${type} AS type, 'legacy RUNNING since ' || j.${col.startedAt} AS detail
        FROM ${ref} j JOIN unnest($3::text[], $4::int[]) AS t(type, timeout) ON t.type = ${type}
       WHERE j.engine = 'LEGACY' AND j.${col.status} = ${status.running} AND ${type} = ANY($1::text[])
         AND j.${col.startedAt} < (now() AT TIME ZONE 'UTC') - make_interval(secs => t.timeout + $2::float8)
      UNION ALL
      SELECT b.id::text, b.name, 'pg-boss active since ' || b.started_on
        FROM ${PGBOSS_SCHEMA}.job b JOIN unnest($3::text[], $4::int[]) AS t(type, timeout) ON t.type = b.name
       WHERE b.name = ANY($1::text[]) AND b.state = 'active' AND b.started_on < now() - make_interval(secs => t.timeout + $2::float8)`,

    // One logical job that ran on both engines: a legacy run (or its retry chain's) finished or
    // running, and a pg-boss run of the same job finished or running.
    double: `
      SELECT j.${col.id}::text AS id, ${type} AS type, 'legacy ' || j.${col.status} || ' and pg-boss ' || b.state AS detail
        FROM ${ref} j
        JOIN ${PGBOSS_SCHEMA}.job b ON b.name = ${type} AND b.id = ${pgbossIdOf}
       WHERE j.engine = 'LEGACY' AND j.${col.status} IN (${status.running}, ${status.completed}) AND ${type} = ANY($1::text[]) AND ${settled}
         AND b.state IN ('active', 'completed')`,
  };
}

/**
 * Row $1 whose pg-boss job's state it may copy (reconcile --fix, drift), with that state, the
 * job's output and the attempts made, the row locked. `stateMapping` is the mapping of pg-boss
 * states to row statuses as a join source named `map` (reconcile/states.ts stateMappingSql).
 */
export const lockFixableDrift = (table: LegacyTable, stateMapping: string) => {
  const { col, status } = table;
  return `
    SELECT j.*, ${typeSql(table)} AS cutover_type, j.${col.status}::text AS cutover_row_status, b.state::text AS cutover_state,
           b.output AS cutover_output,
           -- Attempts made: retry_count, plus the run that ended when the job started at all (as rollback counts them).
           b.retry_count + (b.started_on IS NOT NULL)::int AS cutover_attempts
      FROM ${table.ref} j
      JOIN ${PGBOSS_SCHEMA}.job b ON b.name = ${typeSql(table)} AND b.id = j."pgbossJobId"
      JOIN ${stateMapping} ON map.state = b.state::text
     WHERE j.${col.id} = $1 AND j.${col.status}::text <> map.row_status
       AND (map.final OR (b.state IN ('created', 'retry') AND j.${col.status} = ${status.running}))
     FOR UPDATE OF j`;
};
