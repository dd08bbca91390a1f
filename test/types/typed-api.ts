// Compiled, never run (test/types/typed-api.test.ts runs tsc over it): what a team's code gets
// from a typed registry. Each `@ts-expect-error` marks a line that must not compile; the test
// also proves that each of them is needed.
import { z } from 'zod';
import { createCutover, createRegistry, defineJob, type JobRegistry, type JobTypesOf, type LegacyAdapter } from 'cutover';

const evaluation = defineJob({
  name: 'evaluation.process',
  schema: z.object({ documentId: z.string().min(1), agentId: z.string().min(1), simulateMs: z.number().int().optional() }),
  async handler(payload) {
    return { score: payload.documentId.length + payload.agentId.length };
  },
});

const importArticle = defineJob({
  name: 'import.article',
  // A default: optional at enqueue (the schema's input), always there for handlers and toRow (its output).
  schema: z.object({ url: z.url(), depth: z.number().int().default(1) }),
  async handler(payload) {
    return { depth: payload.depth };
  },
});

const jobs = [evaluation, importArticle] as const;
const registry = createRegistry(jobs, '/app/jobs.js');

export async function producer(): Promise<void> {
  const cutover = await createCutover({
    databaseUrl: 'postgres://localhost/app',
    registry,
    config: {
      legacy: {
        table: 'Job',
        jobType: { column: 'type' },
        toJob: (row) => ({ type: String(row.type), payload: row.payload }),
        toRow: (type, payload) => {
          if (type === 'evaluation.process') return { evaluationId: payload.documentId };
          const depth: number = payload.depth;
          // @ts-expect-error: an import.article payload has no documentId
          return { url: payload.url, depth, evaluationId: payload.documentId };
        },
      },
    },
  });

  await cutover.enqueue('evaluation.process', { documentId: 'd1', agentId: 'a1' }, { key: 'd1' });
  await cutover.enqueue('import.article', { url: 'https://example.com/a' });
  await cutover.manager.enqueue('import.article', { url: 'https://example.com/b', depth: 2 });
  await cutover.enqueueMany('evaluation.process', [{ payload: { documentId: 'd2', agentId: 'a2', simulateMs: 5 }, key: 'd2' }]);

  // @ts-expect-error: not an evaluation.process payload
  await cutover.enqueue('evaluation.process', { wrong: 1 });
  // @ts-expect-error: agentId is required
  await cutover.enqueue('evaluation.process', { documentId: 'd1' });
  // @ts-expect-error: simulateMs is a number
  await cutover.enqueue('evaluation.process', { documentId: 'd1', agentId: 'a1', simulateMs: '5' });
  // @ts-expect-error: no such job type
  await cutover.enqueue('evaluation.proces', { documentId: 'd1', agentId: 'a1' });
  // @ts-expect-error: a batch's payloads are checked too
  await cutover.enqueueMany('import.article', [{ payload: { url: 1 } }]);
  // @ts-expect-error: the manager is typed alike
  await cutover.manager.enqueue('import.article', { href: 'https://example.com' });
  await cutover.close();
}

/** The adapter on its own, typed by the same list, as a cutover.config.ts would hold it. */
export const legacy: LegacyAdapter<JobTypesOf<typeof jobs>> = {
  table: 'Job',
  jobType: { column: 'type' },
  toJob: (row) => ({ type: String(row.type), payload: row.payload }),
  toRow: (type, payload) => (type === 'import.article' ? { url: payload.url } : { evaluationId: payload.documentId }),
};

export const misfit: LegacyAdapter<JobTypesOf<typeof jobs>> = {
  table: 'Job',
  jobType: { column: 'type' },
  toJob: (row) => ({ type: String(row.type), payload: row.payload }),
  // @ts-expect-error: an evaluation.process payload has no url
  toRow: (type, payload) => (type === 'evaluation.process' ? { url: payload.url } : {}),
};

/** A registry loaded from a module path is untyped: any name, any payload, as before. */
export async function untyped(loaded: JobRegistry): Promise<void> {
  const cutover = await createCutover({ registry: loaded });
  await cutover.enqueue('anything', { any: 1 });
  const defaults = await createCutover();
  await defaults.enqueueMany('evaluation.process', [{ payload: { wrong: 1 } }]);
}
