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

/** The mapping as SQL: `(VALUES ...)` usable in a join. */
export function stateMappingSql(): string {
  return `(VALUES ${Object.entries(PGBOSS_TO_ROW_STATUS)
    .map(([state, status]) => `('${state}', '${status}', ${FINAL_PGBOSS_STATES.includes(state as PgbossState)})`)
    .join(', ')}) AS map(state, row_status, final)`;
}
