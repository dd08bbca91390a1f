import { randomBytes } from 'node:crypto';
import { defineConfig } from 'cutover';

/** Every payload names the user the task belongs to: the row's foreign key. */
interface TaskPayload {
  userId: string;
}

export default defineConfig({
  registry: './jobs.ts',
  migrations: './prisma/migrations',
  legacy: {
    table: 'Task',
    jobType: { column: 'kind' },
    // Columns the table has under its own names; updatedAt, startedAt, error and the retry
    // chain (originalJobId) it lacks, and `cutover init` adds them.
    columns: { status: 'state', attempts: 'tries', priority: 'priority', completedAt: 'finishedAt', runAt: 'scheduledFor' },
    status: { pending: 'WAITING', running: 'ACTIVE', completed: 'SUCCEEDED', failed: 'FAILED' },
    toJob: (row) => ({ type: String(row.kind), payload: { ...(row.data as object), userId: row.userId } }),
    toRow: (_type, payload) => {
      const { userId, ...data } = payload as TaskPayload;
      return { userId, data };
    },
    onResult: (result) => ({ costCents: (result as { costCents?: number } | null)?.costCents ?? null }),
    newId: () => `t_${randomBytes(10).toString('hex')}`,
  },
});
