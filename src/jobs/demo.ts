import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineJob, type AnyJobDefinition } from './define.js';
import { NonRetryableError, RateLimitError } from './errors.js';

/** Simulated LLM call: sleeps `simulateMs`, and is rate-limited on its first `failTimes` attempts. */
export const evaluationProcess = defineJob({
  name: 'evaluation.process',
  schema: z.object({
    documentId: z.string().min(1),
    agentId: z.string().min(1),
    simulateMs: z.number().int().min(0).max(600_000).optional(),
    failTimes: z.number().int().min(0).optional(),
  }),
  retry: { limit: 3, delaySeconds: 1, backoff: true },
  timeoutSeconds: 120,
  sideEffects: 'idempotent',
  async handler(payload, context) {
    if (payload.simulateMs) await sleep(payload.simulateMs, undefined, { signal: context.signal });
    if (context.attempt <= (payload.failTimes ?? 0)) {
      throw new RateLimitError(`simulated rate limit on attempt ${context.attempt}`);
    }
    const tokens = 200 + (payload.documentId.length * 37 + payload.agentId.length * 11) % 800;
    return { score: (tokens % 100) / 100, tokens, costInCents: Math.ceil(tokens / 100), thinking: `evaluated ${payload.documentId}` };
  },
});

/** Simulated fetch of an article; a URL that is not http(s) can never succeed. */
export const importArticle = defineJob({
  name: 'import.article',
  schema: z.object({ url: z.url() }),
  retry: { limit: 2, delaySeconds: 2, backoff: true },
  timeoutSeconds: 60,
  sideEffects: 'idempotent',
  async handler(payload) {
    const url = new URL(payload.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new NonRetryableError(`cannot import ${url.protocol} URLs`);
    return { imported: url.href, words: 100 + (url.pathname.length * 13) % 900 };
  },
});

/** An external side effect: one DemoDelivery row per execution, so double runs can be counted. */
export const notificationSend = defineJob({
  name: 'notification.send',
  schema: z.object({ to: z.string().min(1), message: z.string() }),
  retry: { limit: 2, delaySeconds: 5, backoff: false },
  timeoutSeconds: 30,
  sideEffects: 'external',
  async handler(payload, context) {
    await context.db().query(`INSERT INTO "DemoDelivery" ("jobId", engine) VALUES ($1, $2)`, [context.jobId, context.engine]);
    return { deliveredTo: payload.to };
  },
});

export const demoJobs: AnyJobDefinition[] = [evaluationProcess, importArticle, notificationSend];
