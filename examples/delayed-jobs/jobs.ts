import { defineJob } from 'cutover/jobs';
import { z } from 'zod';

export default [
  defineJob({
    name: 'mailers',
    // failTimes: the mail server refuses the first runs, as a flaky one would.
    schema: z.object({ to: z.string().email(), rank: z.number().int(), failTimes: z.number().int().min(0).optional() }),
    timeoutSeconds: 30,
    retry: { limit: 2, delaySeconds: 0, backoff: false },
    handler: async ({ to, rank, failTimes }, { rowId, engine, attempt, db }) => {
      await db().query(`INSERT INTO delayed_job_runs (job_id, engine, priority) VALUES ($1::bigint, $2, $3)`, [rowId, engine, rank]);
      if (failTimes && attempt <= failTimes) throw new Error(`${to}: 421 try again later`);
      return { sentTo: to };
    },
  }),
];
