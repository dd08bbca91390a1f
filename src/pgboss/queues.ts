import type { PgBoss, Queue } from 'pg-boss';
import type { JobDefinition } from '../jobs/define.js';
import type { JobRegistry } from '../jobs/registry.js';
import type { Logger } from '../support/log.js';

/** Dead-lettered jobs of type T live in queue `T.dlq`. */
export function deadLetterQueue(type: string): string {
  return `${type}.dlq`;
}

/**
 * Extra time pg-boss gives a job past its own timeout before expiring it (the commit, clock
 * skew): as long as the timeout, at most 30 s. Expiry is also how a job whose worker died
 * (kill -9) comes back, so the grace is kept short.
 */
function expiryGraceSeconds(timeoutSeconds: number): number {
  return Math.min(30, Math.max(1, Math.ceil(timeoutSeconds)));
}

/** The queue options a job definition implies. */
export function queueOptions(definition: JobDefinition): Omit<Queue, 'name'> {
  return {
    retryLimit: definition.retry.limit,
    retryDelay: definition.retry.delaySeconds,
    retryBackoff: definition.retry.backoff,
    expireInSeconds: Math.ceil(definition.timeoutSeconds) + expiryGraceSeconds(definition.timeoutSeconds),
    deadLetter: deadLetterQueue(definition.name),
    notify: true,
  };
}

/** What a worker's start sets back from the definition when it differs (pg-boss's updateQueue takes these). */
const comparable = ['retryLimit', 'retryDelay', 'retryBackoff', 'expireInSeconds', 'deadLetter', 'notify'] as const;

/**
 * What cutover relies on of a queue that its definition does not set, so pg-boss's defaults
 * (12.38): the standard policy (one job per send, no singleton or stately dedup that would drop a
 * routed job), 14 days before an unstarted job is deleted (dlq retry renews a retried job's
 * keep_until from the queue's retention) and 7 days before a finished one is. A queue someone
 * created by hand, or with other options, keeps what it was created with: pg-boss's createQueue
 * leaves an existing queue alone.
 */
export const QUEUE_DEFAULTS = { policy: 'standard', retentionSeconds: 14 * 86_400, deleteAfterSeconds: 7 * 86_400 } as const;

/** The options a queue of the definition's type should have live: queueOptions plus what cutover relies on of pg-boss's defaults. */
export function expectedQueue(definition: JobDefinition): Omit<Queue, 'name'> {
  return { ...QUEUE_DEFAULTS, ...queueOptions(definition) };
}

/** The options compared by queueDifferences, in the order they are named. */
export const QUEUE_OPTIONS_COMPARED = ['policy', ...comparable, 'retentionSeconds', 'deleteAfterSeconds'] as const;
export type ComparedQueueOption = (typeof QUEUE_OPTIONS_COMPARED)[number];

export interface QueueDifference {
  option: ComparedQueueOption;
  live: unknown;
  wanted: unknown;
  /** Whether a pg-boss worker's start sets it back (ensureQueues); policy and retention it leaves. */
  updatedAtStart: boolean;
}

/** Where a live queue's options differ from what its definition implies (pg-boss reads an unset dead letter as null). */
export function queueDifferences(definition: JobDefinition, live: Omit<Queue, 'name'>): QueueDifference[] {
  const wanted = expectedQueue(definition);
  const updatable: ReadonlySet<string> = new Set(comparable);
  return QUEUE_OPTIONS_COMPARED.filter((key) => (live[key] ?? null) !== (wanted[key] ?? null)).map((option) => ({
    option,
    live: live[option] ?? null,
    wanted: wanted[option] ?? null,
    updatedAtStart: updatable.has(option),
  }));
}

/** One line per difference: `queue evaluation.process: retryLimit 2 live, 3 in the registry`. */
export function describeQueueDifference(queue: string, difference: QueueDifference): string {
  const shown = (value: unknown) => (value === null ? 'none' : typeof value === 'string' ? value : JSON.stringify(value));
  const source = difference.option in QUEUE_DEFAULTS ? "pg-boss's default, which cutover relies on" : 'in the registry';
  return `queue ${queue}: ${difference.option} ${shown(difference.live)} live, ${shown(difference.wanted)} ${source}`;
}

/**
 * One queue per job type plus its dead letter queue, idempotently. A queue whose options
 * drifted from its definition is updated; what pg-boss cannot update is logged as a warning.
 */
export async function ensureQueues(boss: PgBoss, registry: JobRegistry, log: Logger, types = registry.names()): Promise<void> {
  for (const type of types) {
    const definition = registry.require(type);
    const wanted = queueOptions(definition);
    const dlq = deadLetterQueue(type);
    if (!(await boss.getQueue(dlq))) await createIfAbsent(boss, dlq, {});
    const existing = await boss.getQueue(type);
    if (!existing) {
      await createIfAbsent(boss, type, wanted);
      log.info({ queue: type }, 'created pg-boss queue');
      continue;
    }
    const drifted = queueDifferences(definition, existing).filter((difference) => difference.updatedAtStart).map((difference) => difference.option);
    if (!drifted.length) continue;
    try {
      await boss.updateQueue(type, {
        retryLimit: wanted.retryLimit,
        retryDelay: wanted.retryDelay,
        retryBackoff: wanted.retryBackoff,
        expireInSeconds: wanted.expireInSeconds,
        deadLetter: wanted.deadLetter ?? null,
        notify: wanted.notify,
      });
      log.info({ queue: type, updated: drifted }, 'updated pg-boss queue options from the job definition');
    } catch (error) {
      log.warn({ queue: type, drifted, err: error }, 'pg-boss queue options differ from the job definition and could not be updated');
    }
  }
}

async function createIfAbsent(boss: PgBoss, name: string, options: Omit<Queue, 'name'>): Promise<void> {
  try {
    await boss.createQueue(name, options);
  } catch (error) {
    // Two workers starting together may race to create it; the loser finds it there.
    if (!(await boss.getQueue(name))) throw error;
  }
}
