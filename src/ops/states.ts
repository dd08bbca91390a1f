/**
 * The two state machines, mapped in one place.
 *
 *   legacy row:  PENDING → RUNNING → COMPLETED | FAILED   (a retry is a new PENDING row)
 *   pg-boss job: created → active → completed | failed | cancelled, and active → retry → active
 *
 * A pg-boss job's mirror row must say the legacy state below; anything else, past a grace
 * period for in-flight transitions, is drift.
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

/** The mapping as SQL: `(VALUES ...)` usable in a join, for row-at-a-time work (fixes). */
export function stateMappingSql(): string {
  return `(VALUES ${Object.entries(PGBOSS_TO_ROW_STATUS)
    .map(([state, status]) => `('${state}', '${status}', ${FINAL_PGBOSS_STATES.includes(state as PgbossState)})`)
    .join(', ')}) AS map(state, row_status, final)`;
}

/**
 * The mapping as a CASE over a pg-boss state column, for set-based scans: a join against
 * VALUES makes the planner misjudge row counts on millions of rows and loop over an index.
 */
export function rowStatusForSql(stateColumn: string): string {
  return `(CASE ${stateColumn}::text ${Object.entries(PGBOSS_TO_ROW_STATUS)
    .map(([state, status]) => `WHEN '${state}' THEN '${status}'`)
    .join(' ')} END)`;
}
