import type { PgBoss } from 'pg-boss';
import type { Pool } from '../db/pool.js';
import { isConnectionError } from '../db/outage.js';
import { prepared } from '../db/prepared.js';
import { killSwitchOnSql } from '../state/kill-switch.js';
import type { LegacyTable } from '../table/table.js';
import { startableRow, startAssignments } from './mirror.js';
import type { BossJob } from './settle.js';

// Relies on (pg-boss 12.38): `fetch` runs its claim as one statement through the `{ db }` it is
// given (executeSql(text, values)), a single `WITH … UPDATE … RETURNING` of the job columns,
// `id` and `"retryCount"` among them (the count after the claim), and hands back the rows it
// returns as the jobs.

/** What one fetch brought: the jobs claimed, each with its row id, and whether the type's kill switch was on. */
export interface StartedFetch {
  /** True when the type's kill switch was on: nothing was marked started, every job is to be handed back. */
  killed: boolean;
  /** Each job claimed; `rowId` is its legacy row's id, or undefined for a job without a row (or a killed fetch). */
  jobs: { job: BossJob; rowId: string | undefined }[];
}

/**
 * The claim-and-start statement failed for a reason other than a lost connection (a trigger on
 * the team's table, a lock timeout): it rolled back as a whole, so nothing was claimed.
 */
export class StartFailed extends Error {
  constructor(readonly type: string, cause: unknown) {
    super(`could not fetch and start jobs of ${type}`, { cause });
  }
}

/**
 * pg-boss's own claim, wrapped so that the mirror rows go RUNNING and the kill switch is read
 * in the same statement: one round trip per fetch, as bare pg-boss needs, and no window in
 * which a job is claimed but its row not yet started. The statement is pg-boss's, whatever its
 * queue's policy asks of it (priority, singleton, groups), so the claim stays exactly pg-boss's.
 * A failure anywhere (a trigger on the team's table, a lock timeout) rolls the claim back too:
 * the jobs are still in their queue, unrun, no attempt spent. A row is started as startAssignments
 * (mirror.ts) writes it: attempts from the claim's run number as the table counts them, never a
 * row already COMPLETED (startableRow), none under a kill switch.
 */
export async function fetchStarted(
  boss: PgBoss,
  pool: Pool,
  table: LegacyTable,
  options: {
    name: string;
    limit: number;
    workerId: string;
    /**
     * Prepare the statement (planned once per connection): for the fetch a busy worker sends over
     * and over, all its slots at once. Not for every limit: each is a text of its own, and a
     * process prepares only so many (db/prepared.ts). @defaultValue false
     */
    prepare?: boolean;
  },
): Promise<StartedFetch> {
  let killed = false;
  let refused: unknown;
  const rowIds = new Map<string, string>();
  const db = {
    executeSql: async (text: string, values: unknown[] = []) => {
      const statement = startedFetchStatement(table, text, values.length);
      const all = [...values, options.name, options.workerId];
      const result = await pool.query<Record<string, unknown>>(options.prepare ? prepared(statement, all) : { text: statement, values: all }).catch((error: unknown) => {
        refused = error;
        throw error;
      });
      for (const row of result.rows) {
        killed ||= row.cutoverKilled === true;
        if (typeof row.cutoverRowId === 'string') rowIds.set(row.id as string, row.cutoverRowId);
        delete row.cutoverKilled;
        delete row.cutoverRowId;
      }
      return result;
    },
  };
  let jobs: BossJob[];
  try {
    jobs = (await boss.fetch(options.name, { batchSize: options.limit, includeMetadata: true, db })) as BossJob[];
  } catch (error) {
    // Told apart from pg-boss's own failures (an unknown queue), which are not ours to explain.
    if (error === refused && !isConnectionError(error)) throw new StartFailed(options.name, error);
    throw error;
  }
  return { killed, jobs: jobs.map((job) => ({ job, rowId: rowIds.get(job.id) })) };
}

/** `fetch` is pg-boss's claim with `count` values; the type and the worker's id follow as the next two. */
function startedFetchStatement(table: LegacyTable, fetch: string, count: number): string {
  const { col } = table;
  const type = `$${count + 1}`;
  const workerId = `$${count + 2}`;
  // A plain join: the claim is estimated at a row or so, so each row is found through the unique
  // index on "pgbossJobId". An `= ANY(ARRAY(SELECT id FROM fetched))` beside it was measured to
  // turn the lookup into a scan of every PGBOSS row through the claim index (the array is
  // unknown when planning), which grows with the table.
  return `WITH fetched AS (${fetch}),
     killed AS (SELECT ${killSwitchOnSql(`${type}::text`)} AS killed),
     started AS (
       UPDATE ${table.ref} AS j SET ${startAssignments(table, 'f."retryCount" + 1', `${workerId}::text`)}
         FROM fetched f
        WHERE j."pgbossJobId" = f.id AND ${startableRow(table)} AND NOT (SELECT killed FROM killed)
        RETURNING j."pgbossJobId", j.${col.id}::text AS "rowId")
     SELECT f.*, (SELECT killed FROM killed) AS "cutoverKilled", s."rowId" AS "cutoverRowId"
       FROM fetched f LEFT JOIN started s ON s."pgbossJobId" = f.id`;
}
