import { defineJob } from 'cutover/jobs';
import { z } from 'zod';

/** Records the run against the job's own row (a bigint id, on either engine). */
async function recordRun(context: { rowId: string; engine: string; attempt: number; db(): { query(text: string, values: unknown[]): Promise<unknown> } }): Promise<void> {
  await context.db().query(`INSERT INTO job_runs (job_id, engine, attempt) VALUES ($1::bigint, $2, $3)`, [context.rowId, context.engine, context.attempt]);
}

export default [
  defineJob({
    name: 'email.send',
    // delayMs: how long the mail server takes to answer.
    schema: z.object({ to: z.string().email(), subject: z.string().min(1), delayMs: z.number().int().min(0).max(10_000).optional() }),
    timeoutSeconds: 30,
    retry: { limit: 2, delaySeconds: 1 },
    sideEffects: 'external',
    handler: async ({ to, delayMs }, context) => {
      if (delayMs) await new Promise((resolve) => setTimeout(resolve, delayMs));
      await recordRun(context);
      return { sentTo: to };
    },
  }),
  defineJob({
    name: 'report.build',
    // failFirst: the first attempt fails, as a flaky dependency would; the retry succeeds.
    schema: z.object({ reportId: z.number().int(), failFirst: z.boolean().optional() }),
    timeoutSeconds: 30,
    retry: { limit: 2, delaySeconds: 0, backoff: false },
    handler: async ({ reportId, failFirst }, context) => {
      await recordRun(context);
      if (failFirst && context.attempt === 1) throw new Error(`report ${reportId}: upstream timed out`);
      return { reportId };
    },
  }),
];
