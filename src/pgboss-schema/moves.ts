// Relies on (pg-boss 12.38): pgboss.job columns name, id, state, retry_count, started_on,
// start_after, priority and created_on; the state values 'created', 'retry' (not yet started,
// or waiting to run again) and 'active'; that a job in 'retry' has run once more than its
// retry_count says (the claim that runs it again adds that run); that pg-boss fetches with
// SKIP LOCKED (a locked job is not fetched), highest priority then oldest created_on first.
import type { LegacyTable } from '../table/table.js';
import { PGBOSS_SCHEMA } from './schema.js';

/** The job's row is on pg-boss and still waiting: what flipToLegacy (table/handback) will flip. */
const waitingRow = (table: LegacyTable) =>
  `EXISTS (SELECT 1 FROM ${table.ref} r WHERE r."pgbossJobId" = b.id AND r.engine = 'PGBOSS'
             AND r.${table.col.status} IN (${table.status.pending}, ${table.status.running}))`;

/**
 * pg-boss jobs of queue $1 not yet started whose legacy row is still waiting, at most $2,
 * locked; each with the attempts made and the time it is due.
 */
export const lockUnstartedJobs = (table: LegacyTable) => `SELECT b.id, b.retry_count + (b.started_on IS NOT NULL)::int AS attempts, b.start_after AS "startAfter"
       FROM ${PGBOSS_SCHEMA}.job b
      WHERE b.name = $1 AND b.state IN ('created', 'retry') AND ${waitingRow(table)}
      ORDER BY b.priority DESC, b.created_on
      LIMIT $2
      FOR UPDATE OF b SKIP LOCKED`;

/**
 * pg-boss jobs of queue $1 not yet started that have no row at all (sent after `finalize
 * --tracking off`, or around cutover), at most $2, locked; with what a row of their own needs.
 * The priority is pg-boss's, for the caller to decode.
 */
export const lockUntrackedUnstartedJobs = (table: LegacyTable) => `SELECT b.id, b.name, b.data, b.priority, b.retry_limit AS "retryLimit", b.created_on AS "createdOn",
            b.retry_count + (b.started_on IS NOT NULL)::int AS attempts, b.start_after AS "startAfter"
       FROM ${PGBOSS_SCHEMA}.job b
      WHERE b.name = $1 AND b.state IN ('created', 'retry') AND NOT EXISTS (SELECT 1 FROM ${table.ref} r WHERE r."pgbossJobId" = b.id)
      ORDER BY b.priority DESC, b.created_on
      LIMIT $2
      FOR UPDATE OF b SKIP LOCKED`;

/** Running jobs of the queues $1, longest running first. */
export const activeJobs = `SELECT id, name FROM ${PGBOSS_SCHEMA}.job WHERE name = ANY($1::text[]) AND state = 'active' ORDER BY started_on`;

/** Per queue of $1, the jobs lockUnstartedJobs and lockUntrackedUnstartedJobs would take. */
export const countUnstarted = (table: LegacyTable) => `SELECT b.name, count(*) AS n FROM ${PGBOSS_SCHEMA}.job b
      WHERE b.name = ANY($1::text[]) AND b.state IN ('created', 'retry')
        AND (${waitingRow(table)} OR NOT EXISTS (SELECT 1 FROM ${table.ref} r WHERE r."pgbossJobId" = b.id))
      GROUP BY 1`;
