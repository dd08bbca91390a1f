import { randomBytes } from 'node:crypto';
import { defineConfig } from 'cutover';

interface Evaluation {
  evaluationId: string;
  batchId: string | null;
}

interface EvaluationResult {
  llmThinking?: string;
  costInCents?: number;
  logs?: string;
}

/** cuid-shaped: the team's own rows have cuid ids, and rows cutover writes should look alike. */
function cuidLike(): string {
  return `c${Date.now().toString(36)}${randomBytes(8).toString('hex')}`;
}

export default defineConfig({
  registry: './jobs.ts',
  migrations: './prisma/migrations',
  legacy: {
    table: 'Job',
    // Every row of this table is one evaluation job.
    jobType: 'evaluation.process',
    // Required columns keep the generic names (id, status, attempts, createdAt, ...); the table
    // has no priority or maxAttempts column, so every job has priority 0 and the registry's
    // retry policy decides how often it runs.
    columns: { logs: 'logs', durationInSeconds: 'durationInSeconds' },
    toJob: (row) => ({
      type: 'evaluation.process',
      payload: { evaluationId: row.evaluationId, batchId: row.agentEvalBatchId ?? null },
    }),
    toRow: (_type, payload) => {
      const { evaluationId, batchId } = payload as Evaluation;
      return { evaluationId, agentEvalBatchId: batchId };
    },
    onResult: (result) => {
      const { llmThinking = null, costInCents = null, logs = null } = (result ?? {}) as EvaluationResult;
      return { llmThinking, costInCents, logs };
    },
    newId: cuidLike,
  },
});
