import type { PgBoss } from 'pg-boss';
import type { Pool, PoolClient } from '../db/pool.js';
import { audit } from '../state/audit.js';
import { withTransaction } from '../db/transaction.js';
import { messageOf } from '../support/errors.js';
import { affected, clientDb } from './boss.js';
import { listDeadLetters as listDeadLettersSql, lockDeadLetterCopy, lockJobState, renewRetention } from '../pgboss-schema/dlq.js';
import { insertCarried } from './carry.js';
import type { LegacyTable } from '../table/table.js';
import { markRequeued } from './mirror.js';
import { deadLetterQueue } from './queues.js';

export interface DeadLetter {
  /** The dead letter queue's own copy. */
  dlqJobId: string;
  /** The failed job in its own queue, and the mirror row's `pgbossJobId`. */
  jobId: string;
  type: string;
  error: unknown;
  attempts: number;
  deadAt: string;
}

/** pg-boss copies a job that failed for good into `<type>.dlq`, with the failed job as its source. */
export async function listDeadLetters(pool: Pool, types: readonly string[], id?: string): Promise<DeadLetter[]> {
  const { rows } = await pool.query<Omit<DeadLetter, 'deadAt'> & { deadAt: Date }>(listDeadLettersSql, [types.map(deadLetterQueue), id ?? null]);
  return rows.map((row) => ({ ...row, deadAt: row.deadAt.toISOString() }));
}

/**
 * How a dead-lettered job got back into its queue: pg-boss retried the failed job, the job was
 * re-created from its dead-letter copy because pg-boss had already deleted the failed job (its
 * retention is shorter than the dead letter queue's), or someone had already put it back.
 */
export type SentBackHow = 'retried' | 'recreated' | 'already-queued';

export interface DeadLetterRetry {
  /** Verifiably back in their queue; their dead-letter copies are deleted and their rows PENDING. */
  retried: (DeadLetter & { how: SentBackHow })[];
  /** Left as they were (the dead-letter copy kept), with the reason. */
  notRetried: (DeadLetter & { reason: string })[];
}

/**
 * Sends dead-lettered jobs back to their queue, one transaction per job. The dead-letter copy
 * is deleted and the mirror row set PENDING only once the job is verifiably waiting (or
 * running) in its queue under its own id (DESIGN §12 "Delete last"); otherwise that job's
 * transaction rolls back and it is reported with the reason, and the others go on.
 *
 * Not pg-boss 12's own `redrive`: its move is atomic (one statement inserts and deletes), but it
 * re-creates each dead letter as a new job under a fresh id (`gen_random_uuid()`, plans.js
 * redriveJobs) and leaves the failed original failed. The mirror row knows its job by
 * `pgbossJobId`, so the redriven job would run with no row to mirror to (reconcile would call it
 * an orphan) while the row stays FAILED; and a redrive that conflicts fails the copy in place
 * rather than keeping it waiting. Retrying the failed job under its own id keeps the row's link.
 */
export async function retryDeadLetters(pool: Pool, boss: PgBoss, table: LegacyTable, letters: readonly DeadLetter[], actor: string): Promise<DeadLetterRetry> {
  const outcome: DeadLetterRetry = { retried: [], notRetried: [] };
  for (const letter of letters) {
    try {
      const how = await withTransaction(pool, async (client) => {
        const sent = await sendBack(client, boss, table, letter);
        await audit(client, { actor, action: 'dlq.retry', jobType: letter.type, before: { dlqJobId: letter.dlqJobId }, after: { jobId: letter.jobId, how: sent } });
        return sent;
      });
      outcome.retried.push({ ...letter, how });
    } catch (error) {
      outcome.notRetried.push({ ...letter, reason: messageOf(error) });
    }
  }
  return outcome;
}

/** Thrown inside a letter's transaction to roll it back; its message is the reason reported. */
class NotSentBack extends Error {}

/** pg-boss states in which a job is back in its queue: waiting to run, or running. */
const BACK_STATES: ReadonlySet<string> = new Set(['created', 'retry', 'active']);

interface DeadLetterCopy {
  data: object | null;
  priority: number;
  sourceRetryCount: number | null;
}

async function sendBack(client: PoolClient, boss: PgBoss, table: LegacyTable, letter: DeadLetter): Promise<SentBackHow> {
  const db = clientDb(client);
  const dlq = deadLetterQueue(letter.type);
  // Locked, so two operators retrying at once cannot both act on the same letter.
  const { rows: copies } = await client.query<DeadLetterCopy>(lockDeadLetterCopy, [dlq, letter.dlqJobId]);
  const copy = copies[0];
  if (!copy) throw new NotSentBack('its dead-letter copy is gone (sent back or deleted meanwhile)');

  const before = await jobState(client, letter.type, letter.jobId);
  let how: SentBackHow;
  if (before === 'failed') {
    // pg-boss's retry acts only on a failed job; it reports how many it moved.
    const retried = affected(await boss.retry(letter.type, [letter.jobId], { db }));
    if (retried !== 1) throw new NotSentBack(`pg-boss retried ${retried} of 1 failed job`);
    await client.query(renewRetention, [letter.type, letter.jobId]);
    how = 'retried';
  } else if (before === undefined) {
    await recreate(client, boss, letter, copy);
    how = 'recreated';
  } else if (BACK_STATES.has(before)) {
    how = 'already-queued';
  } else {
    throw new NotSentBack(`the job is ${before} in its queue, not failed`);
  }

  const after = await jobState(client, letter.type, letter.jobId);
  if (after === undefined || !BACK_STATES.has(after)) {
    throw new NotSentBack(after === undefined ? 'the job is not in its queue after the retry' : `the job is ${after} in its queue after the retry`);
  }
  if (affected(await boss.deleteJob(dlq, letter.dlqJobId, { db })) !== 1) throw new NotSentBack('its dead-letter copy could not be deleted');
  // A running job's worker has already set its row RUNNING and will settle it; PENDING would
  // be a step back.
  if (after !== 'active') await markRequeued(client, table, letter.jobId);
  return how;
}

/** The job's state in its own queue, locked for this transaction; undefined when it is not there. */
async function jobState(client: PoolClient, name: string, id: string): Promise<string | undefined> {
  const { rows } = await client.query<{ state: string }>(lockJobState, [name, id]);
  return rows[0]?.state;
}

/**
 * Re-creates a job pg-boss has deleted, from its dead-letter copy, under its own id (the
 * mirror row's `pgbossJobId`). `retry` would give the failed job exactly one more run with
 * its attempts counted on; the new job carries the runs so far and is allowed one more.
 */
async function recreate(client: PoolClient, boss: PgBoss, letter: DeadLetter, copy: DeadLetterCopy): Promise<void> {
  const runsSoFar = (copy.sourceRetryCount ?? 0) + 1;
  const inserted = await insertCarried(boss, client, letter.type, [
    { id: letter.jobId, data: copy.data ?? {}, priority: copy.priority, attempts: runsSoFar, maxAttempts: runsSoFar + 1, startAfter: null },
  ]);
  // insert skips a job it conflicts with (ON CONFLICT DO NOTHING) without an error.
  if (!inserted.has(letter.jobId)) throw new NotSentBack('pg-boss did not re-create the job (the insert conflicted with another job)');
}
