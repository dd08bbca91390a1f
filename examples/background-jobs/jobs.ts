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
      // What the team's own "waiting" query reads of the row while it runs, kept for the tests.
      await db().query(
        `INSERT INTO "BackgroundJobRun" ("jobId", engine, "teamWaiting")
         SELECT $1::int, $2, "succeededAt" IS NULL AND attempts < "maxAttempts" FROM "BackgroundJob" WHERE id = $1::int`,
        [rowId, engine],
      );
      if (failTimes && attempt <= failTimes) throw new Error(`${url} answered 503`);
      return { delivered: url };
    },
  }),
];
