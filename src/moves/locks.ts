import { setTimeout as sleep } from 'node:timers/promises';
import { openLockHolder } from '../state/leases.js';
import { CheckFailedError } from '../support/errors.js';
import type { Logger } from '../support/log.js';

/**
 * Locks, one per job type, held by migrate and rollback for their whole run so two operators
 * can't move the same type both ways at once. Try-locks: the second operator is told at once,
 * never left waiting. Keyed by hashtext in a namespace of our own. On a session (directly, or
 * the DIRECT_URL the caller passes) they are session advisory locks; behind a transaction
 * pooler they are leases (state/leases.ts), since a session lock taken there outlives the command.
 */
export interface TypeLocks {
  /** 'session' or 'lease': how the locks are held. */
  readonly kind: 'session' | 'lease';
  release(): Promise<void>;
}

export interface LockWait {
  /** How long to wait for a lock another run holds. @defaultValue 0: fail at once */
  waitSeconds?: number;
  /** Called once per type that is held by someone else when first tried. */
  onWait?: (type: string) => void;
  /** Where a lease that could not be renewed, or was lost, is reported. */
  log?: Logger;
}

const RETRY_MS = 200;

/** The first key of the type locks; the second is hashtext(type). */
export const TYPE_LOCK_SPACE = 'cutover.ops';

/**
 * Migrate runs take the locks shared (two migrates at once are safe: SKIP LOCKED keeps their
 * batches apart); rollback takes them exclusive, so it never runs beside a migrate. A migrate
 * fails at once when a rollback holds a type; a rollback waits (bounded) for a migrate, which
 * stops at its next batch once it sees the kill switch the rollback has already set.
 */
export async function lockJobTypes(databaseUrl: string, types: readonly string[], command: 'migrate' | 'rollback', wait: LockWait = {}): Promise<TypeLocks> {
  const mode = command === 'migrate' ? 'shared' : 'exclusive';
  const holder = await openLockHolder(databaseUrl, { applicationName: `cutover-${command}`, log: wait.log });
  try {
    const deadline = Date.now() + (wait.waitSeconds ?? 0) * 1000;
    // Sorted, so two runs that both wait can never hold each other's next lock.
    for (const type of [...new Set(types)].sort()) {
      for (let tries = 0; ; tries += 1) {
        if (await holder.tryTake({ space: TYPE_LOCK_SPACE, name: type }, mode)) break;
        if (Date.now() >= deadline) {
          const other = command === 'migrate' ? 'a rollback' : 'a migrate or another rollback';
          const waited = tries ? ` after waiting ${wait.waitSeconds}s` : '';
          throw new CheckFailedError(`${other} is running for job type '${type}'${waited}; wait for it to finish`);
        }
        if (tries === 0) wait.onWait?.(type);
        await sleep(RETRY_MS);
      }
    }
  } catch (error) {
    await holder.release();
    throw error;
  }
  return { kind: holder.kind, release: () => holder.release() };
}
