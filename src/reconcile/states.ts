import type { LegacyTable } from '../table/table.js';

/**
 * The two state machines, mapped in one place.
 *
 *   legacy row:  PENDING → RUNNING → COMPLETED | FAILED   (a retry is a new PENDING row)
 *   pg-boss job: created → active → completed | failed | cancelled, and active → retry → active
 *
 * A pg-boss job's mirror row must say the legacy state below (under the table's own status
 * values); anything else, past a grace period for in-flight transitions, is drift.
 */
export const PGBOSS_TO_ROW_STATUS = {
  created: 'PENDING',
  retry: 'PENDING',
  active: 'RUNNING',
  completed: 'COMPLETED',
  failed: 'FAILED',
  cancelled: 'FAILED',
} as const;

export type PgbossState = keyof typeof PGBOSS_TO_ROW_STATUS;

/** pg-boss states after which the job never runs again: their row status can simply be copied. */
export const FINAL_PGBOSS_STATES: readonly PgbossState[] = ['completed', 'failed', 'cancelled'];

/** The legacy status a pg-boss state maps to, as the table spells it (an SQL literal). */
function rowStatusLiteral(table: LegacyTable, state: PgbossState): string {
  return table.status[ROW_STATUS_KEY[PGBOSS_TO_ROW_STATUS[state]]];
}

const ROW_STATUS_KEY = { PENDING: 'pending', RUNNING: 'running', COMPLETED: 'completed', FAILED: 'failed' } as const;

/** The mapping as SQL: `(VALUES ...)` usable in a join, for row-at-a-time work (fixes). */
export function stateMappingSql(table: LegacyTable): string {
  return `(VALUES ${(Object.keys(PGBOSS_TO_ROW_STATUS) as PgbossState[])
    .map((state) => `('${state}', ${rowStatusLiteral(table, state)}, ${FINAL_PGBOSS_STATES.includes(state)})`)
    .join(', ')}) AS map(state, row_status, final)`;
}

/**
 * The mapping as a CASE over a pg-boss state column, for set-based scans: a join against
 * VALUES makes the planner misjudge row counts on millions of rows and loop over an index.
 */
export function rowStatusForSql(table: LegacyTable, stateColumn: string): string {
  return `(CASE ${stateColumn}::text ${(Object.keys(PGBOSS_TO_ROW_STATUS) as PgbossState[])
    .map((state) => `WHEN '${state}' THEN ${rowStatusLiteral(table, state)}`)
    .join(' ')} END)`;
}

/** The raw status value a pg-boss state maps to in this table. */
export function rowStatusFor(table: LegacyTable, state: PgbossState): string {
  return table.statusValue[ROW_STATUS_KEY[PGBOSS_TO_ROW_STATUS[state]]];
}
