import { defineConfig } from 'cutover';

export default defineConfig({
  registry: './jobs.ts',
  migrations: './db/migrate',
  legacy: {
    table: 'delayed_jobs',
    jobType: { column: 'queue' },
    // No status column: failed for good once failed_at is set, held while locked_at is set,
    // waiting otherwise; a success deletes the row (cutover keeps it in its archive instead).
    state: 'derived',
    failedAtMeans: 'failed-for-good',
    onSuccess: 'archive',
    // attempts counts failed runs; priority 0 runs before priority 10.
    attemptsCount: 'failed-runs',
    priorityOrder: 'lower-first',
    retries: 'same-row',
    // delayed_job deletes a success as it is: last_error is not emptied first (the archive keeps it so).
    errorOnSuccess: 'keep',
    columns: {
      attempts: 'attempts',
      priority: 'priority',
      error: 'last_error',
      runAt: 'run_at',
      startedAt: 'locked_at',
      failedAt: 'failed_at',
      createdAt: 'created_at',
      updatedAt: 'updated_at',
    },
    toJob: (row) => ({ type: String(row.queue), payload: JSON.parse(String(row.handler)) as unknown }),
    toRow: (type, payload) => ({ queue: type, handler: JSON.stringify(payload) }),
  },
});
