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

const comparable = ['retryLimit', 'retryDelay', 'retryBackoff', 'expireInSeconds', 'deadLetter', 'notify'] as const;

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
    const drifted = comparable.filter((key) => (existing as Queue)[key] !== wanted[key]);
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
