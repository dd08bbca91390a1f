import { setTimeout as sleep } from 'node:timers/promises';
import { withTransaction } from '../db/transaction.js';
import { clientDb } from '../pgboss/boss.js';
import { audit } from '../state/audit.js';
import { changeFlag, DEFAULT_FLAG } from '../state/flags.js';
import { tableOf, type OpsContext } from '../table/context.js';
import { lockJobTypes } from './locks.js';
import { flipToLegacy, homeUntracked } from '../table/handback.js';
import { legacyPriority } from '../table/priority.js';
import { activeJobs, countUnstarted, lockUnstartedJobs, lockUntrackedUnstartedJobs, type UnstartedJob } from './rollback.sql.js';
import type { PoolClient } from '../db/pool.js';

export interface RollbackOptions extends OpsContext {
  reason?: string;
  /** Job types to roll back; all when empty (the kill switch then goes on `*`). */
  types?: readonly string[];
  /** Wait for active pg-boss jobs to finish. */
  drain?: boolean;
  /** How long --drain waits, and how long to wait for a running migrate to stop. @defaultValue 300 */
  timeoutSeconds?: number;
  /** @defaultValue 500 */
  batchSize?: number;
  dryRun?: boolean;
  /** Aborts --drain's wait (the moved jobs stay moved). */
  signal?: AbortSignal;
  /**
   * After the first sweep, wait this long and sweep again: a producer whose flag cache has not
   * yet seen the kill switch (at most one cache TTL) may still have sent jobs to pg-boss.
   * @defaultValue 5000, the default flag TTL
   */
  settleMs?: number;
}

export interface RollbackSummary {
  dryRun: boolean;
  killSwitch: string[];
  moved: number;
  byType: Record<string, number>;
  /** Of `moved`, jobs that had no row (sent after `finalize --tracking off`): given one through the adapter's toRow. */
  untracked: number;
  /**
   * Unstarted jobs without a row for which the table refused one (per type, with the reason):
   * left in pg-boss unrun; under the kill switch workers do not run them.
   */
  homeless: { type: string; jobs: number; reason: string }[];
  /** pg-boss jobs still running after the drain (or now, without --drain): they finish on pg-boss. */
  stillActive: { id: string; type: string }[];
  drained: boolean;
  seconds: number;
}

/**
 * The way back. Kill switch first, before any lock and whatever else runs: new jobs go legacy,
 * pg-boss workers hand back what they fetch, a running migrate stops at its next batch. Then,
 * once no migrate holds the types (waited for, bounded), every pg-boss job not yet started
 * moves back to legacy PENDING, one transaction per batch (row flipped with its attempts and
 * due time, then the pg-boss job deleted). Active jobs finish on pg-boss; --drain waits.
 */
export async function rollback(options: RollbackOptions): Promise<RollbackSummary> {
  const started = performance.now();
  const { pool, registry, log } = options;
  const types = options.types?.length ? [...options.types] : registry.names();
  const killTargets = options.types?.length ? types : [DEFAULT_FLAG];
  const summary: RollbackSummary = { dryRun: options.dryRun ?? false, killSwitch: killTargets, moved: 0, untracked: 0, homeless: [], byType: {}, stillActive: [], drained: false, seconds: 0 };

  if (options.dryRun) {
    summary.byType = await countUnstarted(pool, tableOf(options), types);
    summary.moved = Object.values(summary.byType).reduce((a, b) => a + b, 0);
    summary.stillActive = (await activeJobs(pool, types)).map((job) => ({ id: job.id, type: job.name }));
    summary.seconds = round((performance.now() - started) / 1000);
    return summary;
  }

  for (const jobType of killTargets) {
    await changeFlag(pool, { jobType, killSwitch: true }, { actor: options.actor, action: 'flag.kill', reason: options.reason ?? 'rollback' });
  }
  const locks = await lockJobTypes(options.databaseUrl, types, 'rollback', {
    log,
    waitSeconds: options.timeoutSeconds ?? 300,
    onWait: (type) => log.warn({ type }, 'kill switch is on; waiting for a running migrate to stop'),
  });
  try {
    const sweep = async () => {
      for (const type of types) {
        for (;;) {
          const moved = await moveBatch(options, type, options.batchSize ?? 500);
          if (!moved) break;
          summary.moved += moved;
          summary.byType[type] = (summary.byType[type] ?? 0) + moved;
        }
        for (;;) {
          const untracked = await moveUntrackedBatch(options, type, options.batchSize ?? 500);
          if ('refused' in untracked) {
            if (!summary.homeless.some((entry) => entry.type === type)) summary.homeless.push({ type, ...untracked.refused });
            log.error({ type, jobs: untracked.refused.jobs, reason: untracked.refused.reason }, 'pg-boss jobs with no row could not be given one in the legacy table: left in pg-boss unrun (the kill switch keeps workers from running them)');
            break;
          }
          if (!untracked.moved) break;
          summary.moved += untracked.moved;
          summary.untracked += untracked.moved;
          summary.byType[type] = (summary.byType[type] ?? 0) + untracked.moved;
        }
      }
    };
    await sweep();
    await sleep(options.settleMs ?? 5000);
    await sweep();
  } finally {
    await locks.release();
  }

  summary.stillActive = await waitForActive(options, types);
  summary.drained = options.drain === true && summary.stillActive.length === 0;
  summary.seconds = round((performance.now() - started) / 1000);
  await audit(pool, {
    actor: options.actor,
    action: 'rollback',
    jobType: options.types?.length ? types.join(',') : DEFAULT_FLAG,
    after: { moved: summary.moved, byType: summary.byType, untracked: summary.untracked, homeless: summary.homeless, stillActive: summary.stillActive.length },
    reason: options.reason ?? null,
  });
  log.info({ moved: summary.moved, stillActive: summary.stillActive.length }, 'rollback finished');
  return summary;
}

async function moveBatch(options: RollbackOptions, type: string, size: number): Promise<number> {
  return withTransaction(options.pool, async (client) => {
    const jobs = await lockUnstartedJobs(client, tableOf(options), type, size);
    return sendBack(client, options, type, jobs);
  });
}

/** The jobs' rows flipped to legacy PENDING, then, last, the jobs whose rows flipped leave pg-boss. */
async function sendBack(client: PoolClient, options: RollbackOptions, type: string, jobs: readonly UnstartedJob[]): Promise<number> {
  const flipped = await flipToLegacy(client, tableOf(options), jobs.map((job) => ({ pgbossId: job.id, attempts: job.attempts, runAfter: job.startAfter })), 'rolledback');
  // Delete last: only jobs whose row now waits on legacy leave pg-boss.
  if (flipped.size) await options.boss.deleteJob(type, [...flipped], { db: clientDb(client) });
  return flipped.size;
}

/**
 * Jobs with no row at all get one first (homeUntracked, through the adapter's toRow), which
 * then flips and leaves pg-boss like any other, all in one transaction. When the table refuses
 * such rows nothing of the batch changes: the jobs stay in pg-boss, unrun under the kill switch.
 */
async function moveUntrackedBatch(options: RollbackOptions, type: string, size: number): Promise<{ moved: number } | { refused: { jobs: number; reason: string } }> {
  const table = tableOf(options);
  return withTransaction(options.pool, async (client) => {
    const jobs = await lockUntrackedUnstartedJobs(client, table, type, size);
    if (!jobs.length) return { moved: 0 };
    const home = await homeUntracked(client, table, jobs.map((job) => ({ pgbossId: job.id, name: job.name, data: job.data, priority: legacyPriority(job.priority), retryLimit: job.retryLimit, createdOn: job.createdOn })));
    if (home.refused !== undefined) return { refused: { jobs: jobs.length, reason: home.refused } };
    return { moved: await sendBack(client, options, type, jobs.filter((job) => home.homed.has(job.id))) };
  });
}

async function waitForActive(options: RollbackOptions, types: readonly string[]): Promise<{ id: string; type: string }[]> {
  const deadline = Date.now() + (options.timeoutSeconds ?? 300) * 1000;
  for (;;) {
    const active = (await activeJobs(options.pool, types)).map((job) => ({ id: job.id, type: job.name }));
    if (!options.drain || !active.length || Date.now() >= deadline || options.signal?.aborted) return active;
    await sleep(Math.min(1000, Math.max(50, deadline - Date.now())));
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
