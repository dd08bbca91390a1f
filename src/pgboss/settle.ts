import type { JobWithMetadata, PgBoss } from 'pg-boss';
import type { Pool, PoolClient } from '../db/pool.js';
import { isConnectionError } from '../db/outage.js';
import { withoutNul } from '../db/refusal.js';
import { refusedData, withTransaction } from '../db/transaction.js';
import { retryDelaySeconds, type JobDefinition } from '../jobs/define.js';
import type { JobFailure } from '../jobs/errors.js';
import type { Logger } from '../support/log.js';
import type { LegacyRow } from '../table/adapter.js';
import { resultNotStored, type LegacyTable } from '../table/table.js';
import { affected, clientDb } from './boss.js';
import { delayRetry as delayRetrySql, exhaustRetries as exhaustRetriesSql } from '../pgboss-schema/settle.js';
import { completeMirrored, markCompleted, markFailed } from './mirror.js';

// How the pg-boss engine commits a job's outcome: the pg-boss state change, fenced to the
// attempt fetched, and the mirror row, both or neither (DESIGN §5, §12): successes as one
// statement per queue (mirror.ts, completeMirrored), the rest in a transaction each.

export type BossJob = JobWithMetadata<unknown>;

/** What settling needs of the worker. */
export interface SettleContext {
  boss: PgBoss;
  pool: Pool;
  table: LegacyTable;
  log: Logger;
}

/** pg-boss no longer holds the attempt this worker fetched: its outcome must not be written. */
export class ClaimLost extends Error {}

/** What became of one member of a group commit. */
export type GroupOutcome = 'completed' | 'lost' | { error: unknown };

/** A job that succeeded, waiting for its group's commit. */
export interface Success {
  definition: JobDefinition;
  job: BossJob;
  result: unknown;
  columns: LegacyRow;
}

function groupBy<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const group = groups.get(key(item));
    if (group) group.push(item);
    else groups.set(key(item), [item]);
  }
  return groups;
}

/**
 * Completes a group of successes: one statement per queue (completeMirrored), each atomic on
 * its own, so members of different queues need no transaction in common. A member pg-boss no
 * longer held for this worker lost its claim and has nothing written. If a queue's statement
 * fails (a result Postgres refuses, say), nothing of it was written and each of its members is
 * settled alone, with the refusal handling of storeSuccess. Answers, per member: completed, its
 * claim was lost, or (settled alone) the error it met, so one member's failure never disowns
 * the others' commits.
 */
export async function completeGroup(context: SettleContext, group: Success[]): Promise<GroupOutcome[]> {
  const outcomes = new Map<Success, GroupOutcome>();
  for (const [name, queued] of groupBy(group, (member) => member.definition.name)) {
    // Two attempts of one job (a worker that fetched its own expired job again): pg-boss holds
    // at most the later one, and the statement must see each job once, or the row could take
    // the stale attempt's result. The earlier attempt lost its claim.
    const latest = new Map<string, Success>();
    for (const member of queued) {
      const seen = latest.get(member.job.id);
      if (!seen || member.job.retryCount > seen.job.retryCount) latest.set(member.job.id, member);
    }
    for (const member of queued) if (latest.get(member.job.id) !== member) outcomes.set(member, 'lost');
    const members = [...latest.values()];
    let completed: Set<string>;
    try {
      completed = await completeMirrored(
        context.pool,
        context.table,
        name,
        members.map(({ job, result, columns }) => ({ id: job.id, retryCount: job.retryCount, output: toOutput(result), columns })),
      );
    } catch (error) {
      if (isConnectionError(error)) throw error;
      await Promise.all(members.map(async (member) => outcomes.set(member, await settleAlone(context, member))));
      continue;
    }
    for (const member of members) outcomes.set(member, completed.has(member.job.id) ? 'completed' : 'lost');
  }
  return group.map((member) => outcomes.get(member)!);
}

function settleAlone(context: SettleContext, { definition, job, result, columns }: Success): Promise<GroupOutcome> {
  return withTransaction(context.pool, (client) => storeSuccess(context, client, definition, job, result, columns)).then(
    (): GroupOutcome => 'completed',
    (failure: unknown): GroupOutcome => (failure instanceof ClaimLost ? 'lost' : { error: failure }),
  );
}

/**
 * A success is never run again: if Postgres refuses the result (a NUL byte, a value its
 * column cannot hold), the job still completes on both sides, without the result, and the
 * row's error says why it was not stored.
 */
export async function storeSuccess(context: SettleContext, client: PoolClient, definition: JobDefinition, job: BossJob, result: unknown, columns: LegacyRow): Promise<void> {
  const { boss } = context;
  const db = clientDb(client);
  const fence = { id: job.id, retryCount: job.retryCount };
  let completed = 0;
  let refusal = await refusedData(client, async () => (completed = affected(await boss.complete(definition.name, fence, toOutput(result), { db }))));
  if (refusal) completed = affected(await boss.complete(definition.name, fence, { resultNotStored: refusal.message }, { db }));
  if (completed !== 1) throw new ClaimLost();
  const rowRefusal = await refusedData(client, () => markCompleted(client, context.table, job.id, columns, refusal && resultNotStored(refusal)));
  if (rowRefusal) {
    refusal = rowRefusal;
    await markCompleted(client, context.table, job.id, {}, resultNotStored(rowRefusal));
  }
  if (refusal) context.log.warn({ jobId: job.id, reason: refusal.message }, 'job succeeded but its result could not be stored; completed without it');
}

export async function storeFailure(context: SettleContext, client: PoolClient, definition: JobDefinition, job: BossJob, failure: JobFailure, willRetry: boolean): Promise<void> {
  const { boss } = context;
  const attempt = job.retryCount + 1;
  if (!willRetry) await exhaustRetries(client, definition.name, job);
  // A NUL in an error message would make Postgres refuse the failure itself, and the job would never settle.
  const message = withoutNul(failure.message);
  const failed = await boss.fail(definition.name, { id: job.id, retryCount: job.retryCount }, { message, kind: failure.kind }, { db: clientDb(client) });
  if (affected(failed) !== 1) throw new ClaimLost();
  await markFailed(client, context.table, job.id, message, attempt, willRetry);
  if (willRetry && failure.kind === 'rate-limited') {
    await delayRetry(client, definition.name, job, retryDelaySeconds(definition.retry, attempt, failure));
  }
}

/** pg-boss stores outputs as JSON objects; wrap anything else. */
function toOutput(result: unknown): object {
  return typeof result === 'object' && result !== null && !Array.isArray(result) ? result : { value: result ?? null };
}

/**
 * A NonRetryableError must not be retried, and pg-boss's `fail` retries while retries remain:
 * spending the budget first makes this failure final, so the job goes to the dead letter queue.
 */
async function exhaustRetries(client: PoolClient, name: string, job: BossJob): Promise<void> {
  await client.query(exhaustRetriesSql, [name, job.id, job.retryCount]);
}

/** A rate-limited job waits longer than pg-boss's own backoff would make it. */
async function delayRetry(client: PoolClient, name: string, job: BossJob, seconds: number): Promise<void> {
  await client.query(delayRetrySql, [name, job.id, seconds, job.retryCount]);
}
