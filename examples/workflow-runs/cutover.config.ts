import { defineConfig } from 'cutover';

export default defineConfig({
  registry: './jobs.ts',
  migrations: './prisma/migrations',
  legacy: {
    table: 'WorkflowRun',
    jobType: { column: 'workflow' },
    retries: 'same-row',
    // A success sets state and finishedAt only: error keeps the last failed run's message.
    errorOnSuccess: 'keep',
    // "retried" counts retries, not runs; "maxRetries" allows maxRetries + 1 runs.
    attemptsCount: 'retries',
    maxAttemptsMeans: 'retries',
    columns: {
      status: 'state',
      attempts: 'retried',
      maxAttempts: 'maxRetries',
      priority: 'priority',
      runAt: 'notBefore',
      // Set when a run ends, either way: the default meaning.
      completedAt: 'finishedAt',
    },
    status: { pending: 'QUEUED', running: 'RUNNING', completed: 'SUCCEEDED', failed: 'FAILED' },
    toJob: (row) => ({ type: String(row.workflow), payload: row.input }),
    toRow: (_type, payload) => ({ input: payload }),
  },
});
