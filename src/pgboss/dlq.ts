import type { PgBoss } from 'pg-boss';
import type { Pool } from '../db/pool.js';
import { withTransaction } from '../db/transaction.js';
import { clientDb, PGBOSS_SCHEMA } from './boss.js';
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
  const { rows } = await pool.query<Omit<DeadLetter, 'deadAt'> & { deadAt: Date }>(
    `SELECT d.id AS "dlqJobId", d.source_id AS "jobId", d.source_name AS type, d.source_output AS error,
            COALESCE(d.source_retry_count, 0) + 1 AS attempts, d.created_on AS "deadAt"
       FROM ${PGBOSS_SCHEMA}.job d
      WHERE d.name = ANY($1::text[]) AND d.state IN ('created', 'retry')
        AND ($2::uuid IS NULL OR d.source_id = $2::uuid OR d.id = $2::uuid)
      ORDER BY d.created_on`,
    [types.map(deadLetterQueue), id ?? null],
  );
  return rows.map((row) => ({ ...row, deadAt: row.deadAt.toISOString() }));
}

/**
 * Sends dead-lettered jobs back to their queue: per job one transaction retries the failed
 * job, removes its dead-letter copy and sets the mirror row PENDING.
 */
export async function retryDeadLetters(pool: Pool, boss: PgBoss, table: LegacyTable, letters: readonly DeadLetter[]): Promise<number> {
  let retried = 0;
  for (const letter of letters) {
    await withTransaction(pool, async (client) => {
      const db = clientDb(client);
      await boss.retry(letter.type, [letter.jobId], { db });
      await boss.deleteJob(deadLetterQueue(letter.type), letter.dlqJobId, { db });
      await markRequeued(client, table, letter.jobId);
    });
    retried += 1;
  }
  return retried;
}
