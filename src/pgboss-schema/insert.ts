// Relies on (pg-boss 12.38): the text of the statement pg-boss's `insert` sends through its
// `{ db }` option, in exactly two shapes: `INSERT INTO … RETURNING id`, or (a queue with
// notify) that insert as the CTE `ins` followed by
// `SELECT id FROM ins WHERE (SELECT count(*) FROM notified) >= 0`; that the insert skips an id
// it already holds (ON CONFLICT DO NOTHING) rather than failing; pgboss.job columns name, id,
// state and retry_count; that a job is inserted in state 'created' with retry_count 0, and
// that pg-boss retries while retry_count < retry_limit.
import { PGBOSS_SCHEMA } from './schema.js';

/** pg-boss 12's insert for a queue with NOTIFY ends in this select over its `ins` CTE. */
const NOTIFY_TAIL = /\n\s*SELECT id FROM ins WHERE \(SELECT count\(\*\) FROM notified\) >= 0\s*$/;

/**
 * pg-boss's insert statement with the tracking rows' INSERT as one more CTE, so both land in
 * one statement: atomic without a transaction, one round trip instead of BEGIN, row, job,
 * COMMIT. Two shapes are known (pg-boss 12.38: `INSERT … RETURNING id`, or that insert as CTE
 * `ins` followed by a NOTIFY); anything else answers null and is never guessed at.
 */
export function composeInsert(bossSql: string, tracking: string): string | null {
  const text = bossSql.trim();
  if (/^INSERT INTO\b/.test(text) && /\bRETURNING id$/.test(text)) return `WITH ins AS (${text}),\n cutover_rows AS (${tracking})\n SELECT id FROM ins`;
  const tail = NOTIFY_TAIL.exec(bossSql);
  if (text.startsWith('WITH ins AS (') && tail) return `${bossSql.slice(0, tail.index)},\n cutover_rows AS (${tracking})${tail[0]}`;
  return null;
}

/**
 * Row-side guard of a composed insert: pg-boss skips an id it already has (ON CONFLICT DO
 * NOTHING), and then the whole statement must fail, rows and jobs alike. The tracking rows'
 * SELECT divides by zero unless `ins` holds every job; `ins` is counted once, in a one-row
 * join (a subquery in the WHERE was measured re-counting it for every row).
 */
export const allJobsInserted = (expected: number) =>
  `CROSS JOIN (SELECT count(*) AS n FROM ins) AS cutover_check WHERE 1 / (CASE WHEN cutover_check.n = ${Math.trunc(expected)} THEN 1 ELSE 0 END) = 1`;

/** Which of the ids ($2) queue $1 holds already. */
export const takenJobIds = `SELECT id::text FROM ${PGBOSS_SCHEMA}.job WHERE name = $1 AND id = ANY($2::uuid[])`;

/**
 * Jobs just inserted (still 'created', visible only to the inserting transaction) get the
 * attempts their chain has made as retry_count. Values: name, ids, attempts.
 */
export const carryAttempts = `UPDATE ${PGBOSS_SCHEMA}.job AS b SET retry_count = t.attempts
         FROM unnest($2::uuid[], $3::int[]) AS t(id, attempts)
        WHERE b.name = $1 AND b.id = t.id AND b.state = 'created'`;
