import { defineJob } from 'cutover/jobs';
import { z } from 'zod';

export default [
  defineJob({
    name: 'invoice.render',
    schema: z.object({ userId: z.string().min(1), invoiceId: z.number().int() }),
    timeoutSeconds: 30,
    retry: { limit: 2, delaySeconds: 1 },
    handler: async ({ invoiceId }, { rowId, engine, db }) => {
      // A child row pointing at the task's own (text) id, on either engine.
      await db().query(`INSERT INTO "TaskEvent" ("taskId", engine) VALUES ($1, $2)`, [rowId, engine]);
      return { costCents: 12.5 + (invoiceId % 3) };
    },
  }),
];
