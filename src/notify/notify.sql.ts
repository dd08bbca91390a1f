import { deadLetterCounts } from '../pgboss-schema/dlq.js';

/**
 * The delivery loop's SQL (prisma/cutover-migrations/0007_notifications). Each function names
 * one statement; values are bound parameters, and the only identifiers spliced in are the
 * constants of SOURCES below.
 */

/** A table whose rows are notifications to be: the audit log, and the reconcile runs. */
export interface SourceTable {
  /** The cursor's name, and the table's. */
  name: 'RolloutEvent' | 'ReconcileRun';
  /** Delivery keys are `<prefix>:<id>`. */
  prefix: string;
  /** The row's time column, for the first cursor position. */
  at: string;
  /** The columns the notification is made of. */
  columns: string;
  /** Which rows are worth a notification; $3, if used, is the list `filterValue` gives. */
  filter: string;
  usesActions: boolean;
}

export const SOURCES: readonly SourceTable[] = [
  {
    name: 'RolloutEvent',
    prefix: 'event',
    at: 'at',
    columns: `s.id::text AS id, s.at, s.actor, s.action, s."jobType", s.before, s.after, s.reason`,
    filter: `s.action = ANY($3::text[])`,
    usesActions: true,
  },
  {
    name: 'ReconcileRun',
    prefix: 'reconcile',
    at: '"finishedAt"',
    columns: `s.id::text AS id, s."finishedAt" AS at, s.findings, s.summary`,
    filter: `s.findings > 0`,
    usesActions: false,
  },
];

/**
 * A source's cursor, created once: at the last row older than the catch-up window, so that
 * turning notifications on delivers the last hour's events, not the whole history.
 */
export function createCursor(source: SourceTable): string {
  return `INSERT INTO "NotificationCursor" (source, position)
          SELECT $1, COALESCE((SELECT max(id) FROM "${source.name}" WHERE ${source.at} < now() - make_interval(secs => $2)), 0)
          ON CONFLICT (source) DO NOTHING`;
}

/** The cursor, locked; no row when another process is reading the same source right now. */
export const lockCursor = `SELECT position::text, "seenId"::text AS "seenId", "seenXmax"::text AS "seenXmax"
                             FROM "NotificationCursor" WHERE source = $1 FOR UPDATE SKIP LOCKED`;

export const saveCursor = `UPDATE "NotificationCursor" SET position = $2::bigint, "seenId" = $3::bigint, "seenXmax" = $4::bigint, "updatedAt" = now() WHERE source = $1`;

/** The oldest transaction still running (anywhere on the server), and the next one to start. */
export const snapshotXmin = `SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xid`;
export const snapshotXmax = `SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS xid`;

/**
 * Rows past the cursor that are worth a notification and not copied yet ($1 position, $2 limit,
 * $3 the audit actions where the source filters by them), and the highest id in the table: one
 * statement, so one snapshot, so `top` is exactly as far as this read saw.
 */
export function unreadRows(source: SourceTable): string {
  return `SELECT (SELECT max(id) FROM "${source.name}")::text AS top,
                 COALESCE((SELECT json_agg(r ORDER BY r.id::bigint) FROM (
                   SELECT ${source.columns} FROM "${source.name}" s
                    WHERE s.id > $1::bigint AND ${source.filter}
                      AND NOT EXISTS (SELECT 1 FROM "NotificationDelivery" d WHERE d.key = '${source.prefix}:' || s.id)
                    ORDER BY s.id LIMIT $2) r), '[]'::json) AS rows`;
}

/** New notifications; a key already there (copied by another process) is skipped. */
export const insertDeliveries = `INSERT INTO "NotificationDelivery" (key, kind, "jobType", "occurredAt", notification)
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::jsonb[])
  ON CONFLICT (key) DO NOTHING`;

/** Dead letters waiting in each dead letter queue: a statement on pg-boss's tables, so pgboss-schema's. */
export { deadLetterCounts };

export const deadLetterCursors = `SELECT source, position::int AS position FROM "NotificationCursor" WHERE source LIKE 'dlq:%'`;

export const createDeadLetterCursor = `INSERT INTO "NotificationCursor" (source, position) VALUES ($1, 0) ON CONFLICT (source) DO NOTHING`;

/**
 * The next due notification, leased: its next attempt moves $1 seconds ahead, so no other loop
 * takes it while this one sends (and should this one die, it is due again then).
 */
export const claimDelivery = `UPDATE "NotificationDelivery" SET attempts = attempts + 1, "nextAttemptAt" = now() + make_interval(secs => $1)
   WHERE id = (SELECT id FROM "NotificationDelivery"
                WHERE "deliveredAt" IS NULL AND "gaveUpAt" IS NULL AND "nextAttemptAt" <= now()
                ORDER BY "nextAttemptAt", id LIMIT 1 FOR UPDATE SKIP LOCKED)
   RETURNING id::text, key, kind, notification, attempts`;

export const markDelivered = `UPDATE "NotificationDelivery" SET "deliveredAt" = now(), "lastError" = NULL WHERE id = $1::bigint AND "deliveredAt" IS NULL`;

/** $3 seconds to the next attempt; $4 true gives up. */
export const markFailed = `UPDATE "NotificationDelivery" SET "lastError" = $2, "nextAttemptAt" = now() + make_interval(secs => $3),
         "gaveUpAt" = CASE WHEN $4 THEN now() END
   WHERE id = $1::bigint AND "deliveredAt" IS NULL`;

/** A claim given back unused (the loop stopped mid-request): due again now, the attempt not counted. */
export const releaseClaim = `UPDATE "NotificationDelivery" SET attempts = attempts - 1, "nextAttemptAt" = now() WHERE id = $1::bigint AND "deliveredAt" IS NULL`;

/**
 * Notifications done (delivered or given up) over a week ago, and, for those copied from a
 * source table, only once that source's cursor has passed their row: a row past the cursor is
 * read again by every loop (the cursor stays behind while an old transaction runs, however long
 * that is), and only the key it holds keeps that read from copying it, and delivering it, again.
 * The cursor only moves forward, and only past rows already copied, so a key it has passed is
 * never needed again whatever other loops do meanwhile. Dead letter notifications come from no
 * table and age out alone. Bounded per call.
 */
export const pruneDone = `DELETE FROM "NotificationDelivery" WHERE id IN (
  SELECT d.id FROM "NotificationDelivery" d
   WHERE COALESCE(d."deliveredAt", d."gaveUpAt") < now() - interval '7 days'
     AND CASE split_part(d.key, ':', 1)
${SOURCES.map((source) => `           WHEN '${source.prefix}' THEN CASE WHEN split_part(d.key, ':', 2) ~ '^[0-9]{1,18}$'
             THEN split_part(d.key, ':', 2)::bigint <= (SELECT position FROM "NotificationCursor" WHERE source = '${source.name}') END`).join('\n')}
           ELSE true END
   LIMIT 1000)`;

export const countPending = `SELECT count(*)::int AS n FROM "NotificationDelivery" WHERE "deliveredAt" IS NULL AND "gaveUpAt" IS NULL`;
