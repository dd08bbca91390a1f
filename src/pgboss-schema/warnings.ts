// Relies on (pg-boss 12.38): the relation pgboss.warning and its column type (slow_query,
// queue_backlog, clock_skew, …: pg-boss's WarningType), one row per warning written by an
// instance started with `persistWarnings` (pgboss/boss.ts: workers), pruned after
// `warningRetentionDays` (365 by default).
import { PGBOSS_SCHEMA } from './schema.js';

/** pg-boss's kept warnings by type (fails with undefined_table before pg-boss is installed). */
export const warningCounts = `SELECT type AS kind, count(*)::int AS count FROM ${PGBOSS_SCHEMA}.warning GROUP BY type ORDER BY type`;
