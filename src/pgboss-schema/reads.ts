// Relies on (pg-boss 12.38): the relations pgboss.job, pgboss.version, pgboss.queue and
// pgboss.schedule; pgboss.job columns name, id (the key is (name, id)), data, state,
// priority, retry_count, retry_limit, output, created_on, started_on, completed_on;
// pgboss.queue's name; pgboss.schedule columns name, key, cron, timezone (null: UTC) and
// last_job_id (the job its last tick filed); that a producer on a queue with `notify` sends
// pg_notify on the channel notifyChannel names, with the queue's name as its payload.
import type { LegacyTable } from '../table/table.js';
import { PGBOSS_SCHEMA } from './schema.js';

/** Whether pg-boss has installed its schema: both relations ($1, $2 from pgbossRelations) exist. */
export const pgbossInstalled = `SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AS installed`;

/** The values of pgbossInstalled: the relations whose presence says pg-boss is installed. */
export const pgbossRelations = [`${PGBOSS_SCHEMA}.version`, `${PGBOSS_SCHEMA}.job`] as const;

/** Whether queue $1 holds job $2. */
export const jobExists = `SELECT 1 FROM ${PGBOSS_SCHEMA}.job WHERE name = $1 AND id = $2`;

/** The queues among $1 that pg-boss has created. */
export const existingQueues = `SELECT name FROM ${PGBOSS_SCHEMA}.queue WHERE name = ANY($1::text[])`;

/** Whether a tick's job ($1 its row id, $2 its queue, $3 its pg-boss id) is there already: its tracking row, or its pg-boss job alone. */
export const tickEnqueued = (table: LegacyTable) => `SELECT EXISTS (SELECT 1 FROM ${table.ref} WHERE ${table.col.id} = $1::${table.idType})
           OR EXISTS (SELECT 1 FROM ${PGBOSS_SCHEMA}.job WHERE name = $2 AND id = $3::uuid) AS exists`;

/** pg-boss's schedules of queue $1, none while pg-boss has no schedule table. */
export const schedulesOf = `SELECT key, cron, COALESCE(timezone, 'UTC') AS timezone, last_job_id::text AS "lastJobId" FROM ${PGBOSS_SCHEMA}.schedule
      WHERE name = $1 AND to_regclass('${PGBOSS_SCHEMA}.schedule') IS NOT NULL`;

/** Job $2 of queue $1 with no legacy row, locked: what reconcile's fix adopts as an orphan. */
export const lockOrphanJob = (table: LegacyTable) => `SELECT b.id, b.name, b.data, b.state::text AS state, b.priority, b.retry_count AS "retryCount", b.retry_limit AS "retryLimit",
              b.output, b.created_on AS "createdOn", b.started_on AS "startedOn", b.completed_on AS "completedOn"
         FROM ${PGBOSS_SCHEMA}.job b
        WHERE b.name = $1 AND b.id = $2
          AND NOT EXISTS (SELECT 1 FROM ${table.ref} j WHERE j."pgbossJobId" = b.id${table.idType === 'uuid' ? ` OR j.${table.col.id} = b.id` : ''})
        FOR UPDATE`;

/**
 * Hand-back's fence: locks the jobs of queue $1 among ids $2 that are still active on the
 * attempt fetched ($3: `id:retry_count`), so a job expired or re-fetched meanwhile is left alone.
 */
export const lockFetchedAttempts = `SELECT id, retry_count FROM ${PGBOSS_SCHEMA}.job
          WHERE name = $1 AND id = ANY($2::uuid[]) AND state = 'active' AND (id::text || ':' || retry_count::text) = ANY($3::text[])
          FOR UPDATE`;

/**
 * The channel pg-boss NOTIFYs when a job lands on a queue with `notify`, as pg-boss derives it
 * from its schema's name (LISTEN takes no expression, so it is read once and listened to).
 */
export const notifyChannel = `SELECT 'pgboss_' || left(encode(sha224('${PGBOSS_SCHEMA}'::bytea), 'hex'), 24) AS channel`;

/** Empties the queues among $1 (the demo's scratch queues, before it starts again). */
export const deleteQueueJobs = `DELETE FROM ${PGBOSS_SCHEMA}.job WHERE name = ANY($1::text[])`;
