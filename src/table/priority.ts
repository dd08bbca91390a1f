/**
 * pg-boss runs higher priority first, then older `created_on`. Migrated jobs get the insert
 * time as `created_on` (pg-boss can't set it), so their real age would be lost: the age is
 * folded into the priority instead. pgboss priority = legacy priority × 1000 + age bucket,
 * where the bucket (0..999) grows with the logarithm of the age: an hour-old job outranks a
 * new one of the same legacy priority, never one of a higher priority. New jobs use the same
 * mapping (age 0), so routed and migrated jobs compare on one scale.
 */
const AGE_BUCKETS = 1000;
const MAX_LEGACY_PRIORITY = 2_000_000; // × 1000 stays inside a 32-bit integer

export function pgbossPriority(legacyPriority: number, ageSeconds = 0): number {
  const priority = Math.max(-MAX_LEGACY_PRIORITY, Math.min(MAX_LEGACY_PRIORITY, Math.trunc(legacyPriority)));
  const bucket = Math.min(AGE_BUCKETS - 1, Math.round(100 * Math.log10(1 + Math.max(0, ageSeconds))));
  return priority * AGE_BUCKETS + bucket;
}

/** Which end of a table's priority column runs first. */
export type PriorityOrder = 'higher-first' | 'lower-first';

/**
 * A priority as a table holds it (its `priority` column, what its toJob returns) in cutover's
 * order, where a higher number runs first as in pg-boss: negated for a table whose lower
 * numbers run first (delayed_job, Que). The mapping is its own inverse, so the same call
 * turns cutover's priority back into the table's.
 */
export function priorityInOrder(order: PriorityOrder, priority: number): number {
  return order === 'lower-first' && priority !== 0 ? -priority : priority;
}

/** The legacy priority a pg-boss priority came from (for rollback). */
export function legacyPriority(pgbossPriorityValue: number): number {
  return Math.floor(pgbossPriorityValue / AGE_BUCKETS);
}
