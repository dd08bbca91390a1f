import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../generated/prisma/client.js';
import { poolConfig } from './pool.js';

export { PrismaClient };
export type { Prisma } from '../generated/prisma/client.js';

/** Prisma Client over node-postgres (the Rust-free client), sessions in UTC like our pools. */
export function createPrisma(connectionString: string, options: { max?: number } = {}): PrismaClient {
  const adapter = new PrismaPg(poolConfig(connectionString, { max: options.max ?? 5, applicationName: 'cutover-prisma' }));
  return new PrismaClient({ adapter });
}
