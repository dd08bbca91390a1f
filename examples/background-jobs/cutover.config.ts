import { defineConfig } from 'cutover';

export default defineConfig({
  registry: './jobs.ts',
  migrations: './prisma/migrations',
  legacy: {
    table: 'BackgroundJob',
    jobType: { column: 'name' },
    // No status column: succeeded when succeededAt is set, failed for good when attempts has
    // reached maxAttempts, waiting otherwise. cutover keeps its own status beside them.
    state: 'derived',
    // attempts counts failed runs: a success leaves it as it was.
    attemptsCount: 'failed-runs',
    // A failed run goes back on the same row, due again at scheduledAt.
    retries: 'same-row',
    // A success writes succeededAt only: lastError keeps the last failure's message.
    errorOnSuccess: 'keep',
    columns: {
      attempts: 'attempts',
      maxAttempts: 'maxAttempts',
      runAt: 'scheduledAt',
      // Set only when a row succeeded (state: 'derived' reads it so).
      completedAt: 'succeededAt',
      error: 'lastError',
      failedAt: 'lastFailedAttemptAt',
    },
    toJob: (row) => ({ type: String(row.name), payload: JSON.parse(String(row.payload)) as unknown }),
    toRow: (type, payload) => ({ name: type, payload: JSON.stringify(payload) }),
  },
});
