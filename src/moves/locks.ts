import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { poolConfig } from '../db/pool.js';
import { CheckFailedError } from '../support/errors.js';

/**
 * Session advisory locks, one per job type, held by migrate and rollback for their whole run
 * so two operators can't move the same type both ways at once. Try-locks: the second operator
 * is told at once, never left waiting. Keyed by hashtext in a namespace of our own.
 */
export interface TypeLocks {
  release(): Promise<void>;
}

export interface LockWait {
  /** How long to wait for a lock another run holds. @defaultValue 0: fail at once */
  waitSeconds?: number;
  /** Called once per type that is held by someone else when first tried. */
  onWait?: (type: string) => void;
}

const RETRY_MS = 200;

/**
 * Migrate runs take the locks shared (two migrates at once are safe: SKIP LOCKED keeps their
 * batches apart); rollback takes them exclusive, so it never runs beside a migrate. A migrate
 * fails at once when a rollback holds a type; a rollback waits (bounded) for a migrate, which
 * stops at its next batch once it sees the kill switch the rollback has already set.
 */
export async function lockJobTypes(databaseUrl: string, types: readonly string[], command: 'migrate' | 'rollback', wait: LockWait = {}): Promise<TypeLocks> {
  const lockFunction = command === 'migrate' ? 'pg_try_advisory_lock_shared' : 'pg_try_advisory_lock';
  const client = new pg.Client(poolConfig(databaseUrl, { applicationName: `cutover-${command}` }));
  client.on('error', () => undefined);
  await client.connect();
  try {
    const deadline = Date.now() + (wait.waitSeconds ?? 0) * 1000;
    // Sorted, so two runs that both wait can never hold each other's next lock.
    for (const type of [...new Set(types)].sort()) {
      for (let tries = 0; ; tries += 1) {
        const { rows } = await client.query<{ locked: boolean }>(`SELECT ${lockFunction}(hashtext('cutover.ops'), hashtext($1)) AS locked`, [type]);
        if (rows[0]?.locked) break;
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
    await client.end().catch(() => undefined);
    throw error;
  }
  // Ending the session releases every lock it holds, even if the process dies first.
  return { release: () => client.end().catch(() => undefined) };
}
