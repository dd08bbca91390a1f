// Relies on (pg-boss 12.38): pgboss.job columns name, id, state, data, priority, created_on and
// the dead-letter copy's source_id, source_name, source_output and source_retry_count (written
// by `fail` when it copies a job that failed for good into its queue's dead letter queue);
// pgboss.queue's name; the state values 'created' and 'retry' (a copy waiting) and 'active';
// and that a dead letter queue of cutover's is named `<type>.dlq` (pgboss/queues.ts).

import { PGBOSS_SCHEMA } from './schema.js';

/** Dead-letter copies waiting in the queues $1, optionally only the one whose source or own id is $2. */
export const listDeadLetters = `SELECT d.id AS "dlqJobId", d.source_id AS "jobId", d.source_name AS type, d.source_output AS error,
            COALESCE(d.source_retry_count, 0) + 1 AS attempts, d.created_on AS "deadAt"
       FROM ${PGBOSS_SCHEMA}.job d
      WHERE d.name = ANY($1::text[]) AND d.state IN ('created', 'retry')
        AND ($2::uuid IS NULL OR d.source_id = $2::uuid OR d.id = $2::uuid)
      ORDER BY d.created_on`;

/** One dead-letter copy ($2 in queue $1), locked, so two operators retrying at once cannot both act on it. */
export const lockDeadLetterCopy = `SELECT data, priority, source_retry_count AS "sourceRetryCount"
       FROM ${PGBOSS_SCHEMA}.job
      WHERE name = $1 AND id = $2 AND state IN ('created', 'retry')
      FOR UPDATE`;

/** A job's state in its own queue ($1, id $2), locked for the transaction. */
export const lockJobState = `SELECT state::text AS state FROM ${PGBOSS_SCHEMA}.job WHERE name = $1 AND id = $2 FOR UPDATE`;

/**
 * Dead letters waiting in each dead letter queue, counted up to $1 (past it the number changes
 * nothing): the live-state index of pgboss.job serves each count.
 */
export const deadLetterCounts = `SELECT q.name, (SELECT count(*)::int FROM (
      SELECT 1 FROM ${PGBOSS_SCHEMA}.job j WHERE j.name = q.name AND j.state IN ('created', 'retry') LIMIT $1) n) AS count
    FROM ${PGBOSS_SCHEMA}.queue q WHERE q.name LIKE '%.dlq'`;

/**
 * Gives job $2 of queue $1, just retried, its queue's retention again from now. pg-boss's retry
 * keeps the job's keep_until, which a job that failed more than its retention ago (14 days by
 * default) has already passed: pg-boss's deletion of unstarted jobs past keep_until would
 * remove it unrun, its dead-letter copy already gone. Relies on pgboss.job's keep_until and
 * pgboss.queue's retention_seconds (NOT NULL in 12.38) and job_now().
 */
export const renewRetention = `UPDATE ${PGBOSS_SCHEMA}.job AS j
        SET keep_until = GREATEST(j.keep_until, ${PGBOSS_SCHEMA}.job_now() + q.retention_seconds * interval '1 second')
       FROM ${PGBOSS_SCHEMA}.queue AS q
      WHERE q.name = j.name AND j.name = $1 AND j.id = $2`;
