import { createRequire } from 'node:module';
import type { PrismaPg } from '@prisma/adapter-pg';
import type { PrismaClient } from '../generated/prisma/client.js';
import { isInstalled, MissingPackageError } from '../support/optional.js';
import { poolConfig } from './pool.js';

export type { PrismaClient };
export type { Prisma } from '../generated/prisma/client.js';

const require = createRequire(import.meta.url);
const PACKAGES = ['@prisma/client@7', '@prisma/adapter-pg@7'];

// Prisma Client 7 and its node-postgres adapter are optional peer dependencies (most of a
// production install's weight, and a team may be on another Prisma): loaded when createPrisma is
// first called, never by importing cutover. Synchronously, so createPrisma stays synchronous;
// the generated client has no top-level await, which require() of an ES module would refuse.
function load(): { PrismaClient: typeof PrismaClient; PrismaPg: typeof PrismaPg } {
  const missing = ['@prisma/client', '@prisma/adapter-pg'].filter((name) => !isInstalled(name));
  if (missing.length) throw new MissingPackageError('createPrisma', PACKAGES, { hint: "or pass your own Prisma client's transaction as { tx }" });
  const { version } = require('@prisma/client/package.json') as { version: string };
  if (!version.startsWith('7.')) {
    throw new MissingPackageError(`createPrisma (found @prisma/client ${version})`, PACKAGES, { hint: "or pass your own Prisma client's transaction as { tx }" });
  }
  return {
    PrismaClient: (require('../generated/prisma/client.js') as { PrismaClient: typeof PrismaClient }).PrismaClient,
    PrismaPg: (require('@prisma/adapter-pg') as { PrismaPg: typeof PrismaPg }).PrismaPg,
  };
}

let loaded: ReturnType<typeof load> | undefined;

/** Prisma Client over node-postgres (the Rust-free client), sessions in UTC like our pools. */
export function createPrisma(connectionString: string, options: { max?: number } = {}): PrismaClient {
  loaded ??= load();
  const adapter = new loaded.PrismaPg(poolConfig(connectionString, { max: options.max ?? 5, applicationName: 'cutover-prisma' }));
  return new loaded.PrismaClient({ adapter });
}
