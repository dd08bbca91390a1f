import type { Pool } from '../db/pool.js';

export interface RolloutEventRow {
  id: string;
  at: string;
  actor: string;
  action: string;
  jobType: string | null;
  before: unknown;
  after: unknown;
  reason: string | null;
}

/**
 * The audit log, newest first. Ordered by the table's bigint id: a bare `id` would name the
 * text column of the select list and sort '10' before '9'.
 */
export async function rolloutHistory(pool: Pool, options: { type?: string; limit?: number } = {}): Promise<RolloutEventRow[]> {
  const { rows } = await pool.query<RolloutEventRow & { at: Date }>(
    `SELECT id::text, at, actor, action, "jobType", before, after, reason FROM "RolloutEvent"
      WHERE ($1::text IS NULL OR "jobType" = $1) ORDER BY "RolloutEvent".id DESC LIMIT $2`,
    [options.type ?? null, options.limit ?? 100],
  );
  return rows.map((row) => ({ ...row, at: (row.at as unknown as Date).toISOString() }));
}
