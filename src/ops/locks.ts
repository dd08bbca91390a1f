import pg from 'pg';
import { poolConfig } from '../db/pool.js';
import { CheckFailedError } from '../errors.js';

/**
 * Session advisory locks, one per job type, held by migrate and rollback for their whole run
 * so two operators can't move the same type both ways at once. Try-locks: the second operator
 * is told at once, never left waiting. Keyed by hashtext in a namespace of our own.
 */
export interface TypeLocks {
  release(): Promise<void>;
}

/**
 * Migrate runs take the locks shared (two migrates at once are safe: SKIP LOCKED keeps their
 * batches apart); rollback takes them exclusive, so it never runs beside a migrate.
 */
export async function lockJobTypes(databaseUrl: string, types: readonly string[], command: 'migrate' | 'rollback'): Promise<TypeLocks> {
  const lockFunction = command === 'migrate' ? 'pg_try_advisory_lock_shared' : 'pg_try_advisory_lock';
  const client = new pg.Client(poolConfig(databaseUrl, { applicationName: `cutover-${command}` }));
  client.on('error', () => undefined);
  await client.connect();
  try {
    for (const type of [...new Set(types)].sort()) {
      const { rows } = await client.query<{ locked: boolean }>(`SELECT ${lockFunction}(hashtext('cutover.ops'), hashtext($1)) AS locked`, [type]);
      if (!rows[0]?.locked) {
        const other = command === 'migrate' ? 'a rollback' : 'a migrate or another rollback';
        throw new CheckFailedError(`${other} is running for job type '${type}'; wait for it to finish`);
      }
    }
  } catch (error) {
    await client.end().catch(() => undefined);
    throw error;
  }
  // Ending the session releases every lock it holds, even if the process dies first.
  return { release: () => client.end().catch(() => undefined) };
}
