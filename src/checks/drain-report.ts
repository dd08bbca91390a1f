import type { Pool } from '../db/pool.js';
import { typeSql, type LegacyTable } from '../table/table.js';

/**
 * What still keeps the legacy runner alive, per job type: every legacy row that is not final,
 * in exactly one category. The legacy side is drained when every count is zero; only then can
 * the runner be switched off (a row scheduled next month, a retry chain still open or a
 * quarantined row would otherwise wait forever).
 */
export interface DrainCounts {
  type: string;
  /** Due now, first attempt. */
  waiting: number;
  /** Waiting rows by age since creation. */
  waitingByAge: { underHour: number; hourToDay: number; overDay: number };
  /** Seconds since the oldest waiting row was created. */
  oldestWaitingSeconds: number | null;
  /** Due later (`runAt` / `runAfter` in the future), first attempt. */
  scheduled: number;
  /** When the last scheduled row is due. */
  lastDueAt: string | null;
  /** Open retry chains: a pending retry (attempts made, or a retry row of a chain). */
  retrying: number;
  /** Running with a heartbeat younger than the stale limit. */
  runningLive: number;
  /** Running with no heartbeat, or one older than the stale limit (a dead worker, or a runner that does not beat). */
  runningStale: number;
  /** Pending rows migrate could not map (MigrationQuarantine): they stay legacy until someone acts. */
  quarantined: number;
}

export interface DrainReport {
  types: DrainCounts[];
  /** True when no row of the types asked keeps the legacy runner alive. */
  drained: boolean;
  staleAfterSeconds: number;
}

const OPEN_KINDS = ['waiting', 'scheduled', 'retrying', 'runningLive', 'runningStale', 'quarantined'] as const;

export function openRows(counts: DrainCounts): number {
  return OPEN_KINDS.reduce((sum, kind) => sum + counts[kind], 0);
}

/**
 * One set-based pass over the legacy rows that are not final (the claim index serves it:
 * engine, status, due), grouped by type. `types` limits it; without, every type in the table
 * counts, registered or not: an unknown type's rows keep the runner alive too.
 */
export async function drainReport(pool: Pool, table: LegacyTable, options: { types?: readonly string[]; staleAfterSeconds?: number } = {}): Promise<DrainReport> {
  const { col, status, ref, due } = table;
  const type = typeSql(table);
  const staleAfterSeconds = options.staleAfterSeconds ?? 60;
  const retry = `(j.${col.attempts} > 0${col.originalJobId ? ` OR j.${col.originalJobId} IS NOT NULL` : ''})`;
  const pending = `j.${col.status} = ${status.pending} AND q."jobId" IS NULL`;
  const waiting = `${pending} AND NOT ${retry} AND j.${due} <= now()`;
  const { rows } = await pool.query<Record<string, unknown> & { type: string }>(
    `SELECT ${type} AS type,
            count(*) FILTER (WHERE ${waiting})::int AS waiting,
            count(*) FILTER (WHERE ${waiting} AND j.${col.createdAt} > now() - interval '1 hour')::int AS "underHour",
            count(*) FILTER (WHERE ${waiting} AND j.${col.createdAt} <= now() - interval '1 hour' AND j.${col.createdAt} > now() - interval '1 day')::int AS "hourToDay",
            count(*) FILTER (WHERE ${waiting} AND j.${col.createdAt} <= now() - interval '1 day')::int AS "overDay",
            EXTRACT(EPOCH FROM now() - min(j.${col.createdAt}) FILTER (WHERE ${waiting}))::float8 AS "oldestWaitingSeconds",
            count(*) FILTER (WHERE ${pending} AND NOT ${retry} AND j.${due} > now())::int AS scheduled,
            max(j.${due}) FILTER (WHERE ${pending} AND NOT ${retry} AND j.${due} > now()) AS "lastDueAt",
            count(*) FILTER (WHERE ${pending} AND ${retry})::int AS retrying,
            count(*) FILTER (WHERE j.${col.status} = ${status.running} AND j."heartbeatAt" > now() - make_interval(secs => $2::float8))::int AS "runningLive",
            count(*) FILTER (WHERE j.${col.status} = ${status.running} AND (j."heartbeatAt" IS NULL OR j."heartbeatAt" <= now() - make_interval(secs => $2::float8)))::int AS "runningStale",
            count(*) FILTER (WHERE j.${col.status} = ${status.pending} AND q."jobId" IS NOT NULL)::int AS quarantined
       FROM ${ref} j LEFT JOIN "MigrationQuarantine" q ON q."jobId" = j.${col.id}::text
      WHERE j.engine = 'LEGACY' AND j.${col.status} IN (${status.pending}, ${status.running})
        AND ($1::text[] IS NULL OR ${type} = ANY($1::text[]))
      GROUP BY 1 ORDER BY 1`,
    [options.types?.length ? options.types : null, staleAfterSeconds],
  );
  const types = rows.map(
    (row): DrainCounts => ({
      type: row.type,
      waiting: row.waiting as number,
      waitingByAge: { underHour: row.underHour as number, hourToDay: row.hourToDay as number, overDay: row.overDay as number },
      oldestWaitingSeconds: row.oldestWaitingSeconds === null ? null : Math.round(row.oldestWaitingSeconds as number),
      scheduled: row.scheduled as number,
      lastDueAt: row.lastDueAt ? new Date(row.lastDueAt as string).toISOString() : null,
      retrying: row.retrying as number,
      runningLive: row.runningLive as number,
      runningStale: row.runningStale as number,
      quarantined: row.quarantined as number,
    }),
  );
  return { types, drained: types.every((counts) => openRows(counts) === 0), staleAfterSeconds };
}
