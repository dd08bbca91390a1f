import { defineJob } from 'cutover/jobs';
import { z } from 'zod';

export default [
  defineJob({
    name: 'webhook.deliver',
    // failTimes: the receiver is down for the first runs, as a flaky endpoint would be.
    schema: z.object({ url: z.string().url(), failTimes: z.number().int().min(0).optional() }),
    timeoutSeconds: 30,
    retry: { limit: 2, delaySeconds: 0, backoff: false },
    handler: async ({ url, failTimes }, { rowId, engine, attempt, db }) => {
      await db().query(`INSERT INTO "BackgroundJobRun" ("jobId", engine) VALUES ($1::int, $2)`, [rowId, engine]);
      if (failTimes && attempt <= failTimes) throw new Error(`${url} answered 503`);
      return { delivered: url };
    },
  }),
];
