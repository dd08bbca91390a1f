import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../support/log.js';
import type { Engine } from '../jobs/define.js';
import { isConnectionError } from '../db/outage.js';
import type { Pool, Queryable } from '../db/pool.js';

/**
 * Workers announce themselves in "WorkerHeartbeat": engine, host, pid, cutover version and the
 * types they run, refreshed every `intervalMs`. Preflight reads it to know that each type with
 * traffic on an engine has a live worker there, and that live workers run one version.
 */

/** A worker is live while its heartbeat is younger than this many intervals (one missed beat is no death). */
export const LIVE_AFTER_INTERVALS = 3;
export const HEARTBEAT_INTERVAL_MS = 10_000;

/** cutover's own version, from the package.json beside src/ and dist/. */
export const CUTOVER_VERSION: string = (() => {
  const file = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
})();

export interface WorkerBeat {
  workerId: string;
  engine: Engine;
  types: readonly string[];
}

export interface LiveWorker extends WorkerBeat {
  host: string;
  pid: number;
  version: string;
  startedAt: string;
  seenAt: string;
}

async function beat(db: Queryable, worker: WorkerBeat, version: string): Promise<void> {
  await db.query(
    `INSERT INTO "WorkerHeartbeat" ("workerId", engine, host, pid, version, types) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT ("workerId") DO UPDATE SET "seenAt" = now(), types = EXCLUDED.types, version = EXCLUDED.version`,
    [worker.workerId, worker.engine, hostname(), process.pid, version, worker.types],
  );
}

/**
 * Beats now and every `intervalMs` until the returned stop, which removes the row: a worker
 * that stops cleanly is gone at once, one that dies is gone once its beat is stale. A failed
 * beat is logged and retried on the next tick; it never stops the worker.
 */
export async function startHeartbeat(
  pool: Pool,
  worker: WorkerBeat,
  options: { log: Logger; intervalMs?: number; version?: string },
): Promise<() => Promise<void>> {
  const version = options.version ?? CUTOVER_VERSION;
  const tick = () =>
    beat(pool, worker, version).catch((error: unknown) => {
      // An outage is logged once by whoever meets it first (OutageLog); a beat just waits for the next tick.
      if (!isConnectionError(error)) options.log.warn({ err: error, workerId: worker.workerId }, 'could not record the worker heartbeat');
    });
  await tick();
  const timer = setInterval(() => void tick(), options.intervalMs ?? HEARTBEAT_INTERVAL_MS);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await pool.query(`DELETE FROM "WorkerHeartbeat" WHERE "workerId" = $1`, [worker.workerId]).catch(() => undefined);
  };
}

/** Workers whose heartbeat is fresh; older rows (dead workers) are ignored, not deleted. */
export async function liveWorkers(db: Queryable, intervalMs = HEARTBEAT_INTERVAL_MS): Promise<LiveWorker[]> {
  const { rows } = await db.query<LiveWorker & { startedAt: Date; seenAt: Date }>(
    `SELECT "workerId", engine, host, pid, version, types, "startedAt", "seenAt" FROM "WorkerHeartbeat"
      WHERE "seenAt" > now() - make_interval(secs => $1::float8) ORDER BY "startedAt"`,
    [(intervalMs * LIVE_AFTER_INTERVALS) / 1000],
  );
  return rows.map((row) => ({ ...row, startedAt: row.startedAt.toISOString(), seenAt: row.seenAt.toISOString() }));
}
