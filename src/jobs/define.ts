import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { Pool } from '../db/pool.js';

export type Engine = 'LEGACY' | 'PGBOSS';
export type SideEffects = 'none' | 'idempotent' | 'external';

export interface RetryPolicy {
  /** Retries after the first attempt; a job runs at most `limit + 1` times. */
  limit: number;
  delaySeconds: number;
  /** Exponential: the n-th retry waits `delaySeconds * 2^(n-1)`. */
  backoff: boolean;
}

export interface JobContext {
  /** The job's id in the engine running it: the row's id on legacy, the pg-boss id on pg-boss. */
  jobId: string;
  /**
   * The legacy row's own id on both engines (a cuid, a bigint as text), so a job can write
   * rows that point at its row even when its pg-boss id is a uuidv5 of that id.
   */
  rowId: string;
  /** 1 for the first run. */
  attempt: number;
  engine: Engine;
  /** Aborted when the job times out or its worker shuts down. */
  signal: AbortSignal;
  /** The job's database, for handlers whose work is a write (opened on first use). */
  db(): Pool;
  log(message: string, fields?: Record<string, unknown>): void;
}

export interface JobDefinition<Payload = unknown, Result = unknown> {
  name: string;
  schema: StandardSchemaV1<unknown, Payload>;
  handler: (payload: Payload, context: JobContext) => Promise<Result>;
  retry: RetryPolicy;
  timeoutSeconds: number;
  sideEffects: SideEffects;
}

export interface JobDefinitionInput<Payload, Result> {
  name: string;
  schema: StandardSchemaV1<unknown, Payload>;
  handler: (payload: Payload, context: JobContext) => Promise<Result>;
  /** @defaultValue `{ limit: 2, delaySeconds: 5, backoff: true }` */
  retry?: Partial<RetryPolicy>;
  /** @defaultValue 300 */
  timeoutSeconds?: number;
  /** @defaultValue 'none' */
  sideEffects?: SideEffects;
}

/** The retry policy of a definition that sets none, and of a row whose type is unknown. */
export const DEFAULT_RETRY: RetryPolicy = { limit: 2, delaySeconds: 5, backoff: true };

const jobName = /^[A-Za-z0-9_.-]{1,100}$/;

/** One definition that both engines run the same way. */
export function defineJob<Payload, Result>(input: JobDefinitionInput<Payload, Result>): JobDefinition<Payload, Result> {
  if (!jobName.test(input.name)) {
    throw new TypeError(`job name must be 1-100 letters, digits, '.', '_' or '-', got '${input.name}'`);
  }
  const retry: RetryPolicy = { ...DEFAULT_RETRY, ...input.retry };
  if (!Number.isInteger(retry.limit) || retry.limit < 0 || retry.limit > 100) {
    throw new TypeError(`${input.name}: retry.limit must be an integer from 0 to 100, got ${retry.limit}`);
  }
  if (!(retry.delaySeconds >= 0)) throw new TypeError(`${input.name}: retry.delaySeconds must be >= 0, got ${retry.delaySeconds}`);
  const timeoutSeconds = input.timeoutSeconds ?? 300;
  if (!(timeoutSeconds > 0)) throw new TypeError(`${input.name}: timeoutSeconds must be > 0, got ${timeoutSeconds}`);
  return { name: input.name, schema: input.schema, handler: input.handler, retry, timeoutSeconds, sideEffects: input.sideEffects ?? 'none' };
}

/** How many times a job of this definition may run in all. */
export function maxAttempts(definition: Pick<JobDefinition, 'retry'>): number {
  return definition.retry.limit + 1;
}

/** Multiplies the normal delay of a retry after a rate-limit error. */
export const RATE_LIMIT_FACTOR = 4;

/** Seconds before the retry that follows failed attempt number `attempt` (1-based). */
export function retryDelaySeconds(retry: RetryPolicy, attempt: number, failure: { kind: string; retryAfterSeconds?: number }): number {
  const base = retry.backoff ? retry.delaySeconds * 2 ** Math.max(0, attempt - 1) : retry.delaySeconds;
  if (failure.kind !== 'rate-limited') return base;
  return failure.retryAfterSeconds ?? Math.max(1, base * RATE_LIMIT_FACTOR);
}

/**
 * A definition of any payload type, as registries hold them. `any`, not `unknown`: a handler
 * taking `{ url: string }` is not a handler of `unknown` (parameters are contravariant), and
 * the registry validates every payload against the definition's own schema before the call.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyJobDefinition = JobDefinition<any, unknown>;
