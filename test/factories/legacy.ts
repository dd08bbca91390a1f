// Rows of the legacy (tracking) table in a given state, with state-consistent defaults: a
// RUNNING row has a start, a worker and a heartbeat; a finished one has its completion time and
// attempts; a FAILED one its error, a COMPLETED one its result. Written as cutover writes rows
// (insertJobRows, through the generic table's adapter), then moved to the state asked for.
import type { Engine } from '../../src/jobs/define.js';
import type { Pool } from '../../src/db/pool.js';
import { insertJobRows } from '../../src/table/tracking.js';
import { GENERIC_TABLE } from '../../src/table/table.js';

export type LegacyStatus = 'PENDING' | 'RUNNING' | 'COMPLETED' | 'FAILED';

export interface LegacyJobOptions {
  type: string;
  /** @defaultValue {} */
  payload?: unknown;
  /** @defaultValue 'PENDING' */
  status?: LegacyStatus;
  /** @defaultValue 'LEGACY' */
  engine?: Engine;
  /** @defaultValue 0 when PENDING, else 1 */
  attempts?: number;
  /** @defaultValue 3 */
  maxAttempts?: number;
  id?: string;
  priority?: number;
  routeReason?: string;
  /** The earliest start (backoff, scheduling). @defaultValue now */
  runAfter?: Date;
  originalJobId?: string;
  /** @defaultValue 'factory: failed' when FAILED */
  error?: string;
  /** @defaultValue { ok: true } when COMPLETED */
  result?: unknown;
  /** @defaultValue 'factory-worker' when RUNNING */
  workerId?: string;
}

/** One row in `options.status`; returns its id. */
export async function legacyJob(pool: Pool, options: LegacyJobOptions): Promise<string> {
  const status = options.status ?? 'PENDING';
  const [id] = await insertJobRows(queryOf(pool), GENERIC_TABLE, [
    {
      ...(options.id ? { id: options.id } : {}),
      type: options.type,
      payload: options.payload ?? {},
      maxAttempts: options.maxAttempts ?? 3,
      engine: options.engine ?? 'LEGACY',
      ...(options.priority !== undefined ? { priority: options.priority } : {}),
      ...(options.routeReason !== undefined ? { routeReason: options.routeReason } : {}),
    },
  ]);
  const running = status === 'RUNNING';
  const finished = status === 'COMPLETED' || status === 'FAILED';
  // The legacy columns are timestamp without time zone, in UTC; cutover's (runAfter, heartbeatAt) are timestamptz.
  await pool.query(
    `UPDATE "Job" SET status = $2::"JobStatus", attempts = $3, "runAfter" = COALESCE($4::timestamptz, "runAfter"), "originalJobId" = $5,
       error = $6, result = $7::jsonb, "workerId" = $8,
       "startedAt" = CASE WHEN $2 = 'PENDING' THEN NULL ELSE now() AT TIME ZONE 'UTC' END,
       "heartbeatAt" = CASE WHEN $2 = 'RUNNING' THEN now() END,
       "completedAt" = CASE WHEN $2 IN ('COMPLETED', 'FAILED') THEN now() AT TIME ZONE 'UTC' END
     WHERE id = $1`,
    [
      id,
      status,
      options.attempts ?? (status === 'PENDING' ? 0 : 1),
      options.runAfter ?? null,
      options.originalJobId ?? null,
      options.error ?? (status === 'FAILED' ? 'factory: failed' : null),
      finished && status === 'COMPLETED' ? JSON.stringify(options.result ?? { ok: true }) : options.result === undefined ? null : JSON.stringify(options.result),
      options.workerId ?? (running ? 'factory-worker' : null),
    ],
  );
  return id!;
}

function queryOf(pool: Pool) {
  return { query: async <Row>(text: string, values?: unknown[]) => (await pool.query(text, values)).rows as Row[] };
}
