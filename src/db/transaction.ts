import type { Pool, PoolClient } from './pool.js';
import { isDataRefusal } from './refusal.js';

/**
 * Runs `work` in one transaction on a client of its own: committed if it returns, rolled back
 * if it throws (the error goes on), the client always released. A checked-out client has no
 * listener of the pool's: when the server dies under it (a Postgres restart), its 'error' event
 * would be unhandled and kill the process. It is caught here, the query in flight fails as it
 * should, and the broken client is destroyed instead of going back to the pool.
 */
export async function withTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  const onError = (error: Error) => {
    broken = error;
  };
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    if (!broken) await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}


/**
 * Runs `work` inside a savepoint of the client's open transaction. If Postgres refuses its
 * data, only `work` is undone and the refusal is returned, so the caller can store less;
 * any other error rolls back to the savepoint and goes on.
 */
export async function refusedData(client: PoolClient, work: () => Promise<unknown>): Promise<Error | undefined> {
  await client.query('SAVEPOINT cutover_store');
  try {
    await work();
    await client.query('RELEASE SAVEPOINT cutover_store');
    return undefined;
  } catch (error) {
    await client.query('ROLLBACK TO SAVEPOINT cutover_store');
    if (isDataRefusal(error)) return error as Error;
    throw error;
  }
}
