import { defineConfig } from 'cutover';

export default defineConfig({
  registry: './jobs.ts',
  migrations: './migrations',
  legacy: {
    table: 'jobs',
    jobType: { column: 'queue' },
    // A failed attempt goes back on the same row; there is no originalJobId.
    retries: 'same-row',
    columns: {
      id: 'id',
      status: 'status',
      attempts: 'attempts',
      maxAttempts: 'max_attempts',
      createdAt: 'created_at',
      updatedAt: 'updated_at',
      startedAt: 'locked_at',
      completedAt: 'finished_at',
      error: 'last_error',
      // Scheduled jobs and backed-off retries wait for run_at on either engine.
      runAt: 'run_at',
    },
    status: { pending: 'queued', running: 'working', completed: 'done', failed: 'dead' },
    toJob: (row) => ({ type: String(row.queue), payload: row.payload }),
    toRow: (type, payload) => ({ queue: type, payload }),
    // Ids come from the table's own sequence (bigserial): no newId.
  },
});
