import type { Db } from 'pg-boss';
import { fromPrisma } from 'pg-boss';
import type { PoolClient } from './pool.js';

/**
 * One open transaction, whoever opened it: our own pool client, or a caller's Prisma
 * interactive transaction (so a business write and its job commit together). `boss` is the
 * same transaction in the form pg-boss's `{ db }` option takes.
 */
export interface Tx {
  query<Row = Record<string, unknown>>(text: string, values?: unknown[]): Promise<Row[]>;
  boss: Db;
}

/** pg-boss's `{ db }` over one of our pool clients, so its writes join our transaction. */
export function clientDb(client: PoolClient): Db {
  return { executeSql: (text: string, values?: unknown[]) => client.query(text, values) };
}

export function clientTx(client: PoolClient): Tx {
  return {
    query: async <Row>(text: string, values?: unknown[]) => (await client.query(text, values)).rows as Row[],
    boss: clientDb(client),
  };
}

/** The shape of a Prisma interactive transaction client that we use. */
export interface PrismaTransaction {
  $queryRawUnsafe<T = unknown>(query: string, ...values: unknown[]): Promise<T>;
  $executeRawUnsafe(query: string, ...values: unknown[]): Promise<number>;
}

export function prismaTx(tx: PrismaTransaction): Tx {
  return {
    query: <Row>(text: string, values: unknown[] = []) => tx.$queryRawUnsafe<Row[]>(text, ...values),
    boss: fromPrisma(tx as Parameters<typeof fromPrisma>[0]),
  };
}

export function isPrismaTransaction(value: unknown): value is PrismaTransaction {
  return typeof value === 'object' && value !== null && '$queryRawUnsafe' in value;
}
