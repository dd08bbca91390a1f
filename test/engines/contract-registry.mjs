// The fixture registry plus one job type for the engine contract: it reports what its handler
// was told, so the suite can compare what each engine hands a handler.
import { z } from 'zod';
import { defineJob } from '../../dist/jobs/index.js';
import shared from '../fixtures/registry.mjs';

export default [
  ...shared,
  defineJob({
    name: 'contract.echo',
    schema: z.object({}).passthrough(),
    retry: { limit: 2, delaySeconds: 0 },
    async handler(_payload, context) {
      return { rowId: context.rowId, jobId: context.jobId, engine: context.engine, attempt: context.attempt };
    },
  }),
  // What Prisma's $queryRaw gives for count(*): a BigInt, beside a cycle; JSON encodes neither.
  defineJob({
    name: 'contract.bigint',
    schema: z.object({}).passthrough(),
    retry: { limit: 2, delaySeconds: 0 },
    async handler(_payload, context) {
      await context.db().query(`INSERT INTO "DemoDelivery" ("jobId", engine) VALUES ($1, $2)`, [context.rowId, `${context.engine}:bigint`]);
      const result = { count: 12345678901234567890n };
      result.self = result;
      return result;
    },
  }),
];
