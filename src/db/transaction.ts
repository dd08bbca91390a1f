import type { Pool, PoolClient } from './pool.js';

/**
 * Runs `work` in one transaction on a client of its own: committed if it returns, rolled back
 * if it throws (the error goes on), the client always released.
 */
export async function withTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
