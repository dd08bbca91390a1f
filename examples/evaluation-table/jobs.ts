import { defineJob } from 'cutover/jobs';
import { z } from 'zod';

/**
 * The one job type of the evaluation table. Both engines run this same handler: the legacy
 * runner in a child process per job, pg-boss in the worker process.
 */
export default [
  defineJob({
    name: 'evaluation.process',
    schema: z.object({ evaluationId: z.string().min(1), batchId: z.string().min(1).nullable() }),
    timeoutSeconds: 60,
    retry: { limit: 2, delaySeconds: 1 },
    handler: async ({ evaluationId, batchId }, { attempt, engine }) => ({
      llmThinking: `evaluated ${evaluationId}${batchId ? ` of batch ${batchId}` : ''}`,
      costInCents: 10 + (evaluationId.length % 7),
      logs: `attempt ${attempt} on ${engine}`,
    }),
  }),
];
