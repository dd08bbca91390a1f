import type { StandardJSONSchemaV1 } from '@standard-schema/spec';
import { z } from 'zod';
import { messageOf } from '../support/errors.js';
import { maxAttempts, RATE_LIMIT_FACTOR, retryDelaySeconds, type AnyJobDefinition, type SideEffects } from './define.js';
import type { JobRegistry } from './registry.js';

/** The payload a job type takes, as JSON Schema when its schema library can say. */
export type PayloadShape =
  | { vendor: string; jsonSchema: Record<string, unknown> }
  | { vendor: string; jsonSchema: null; unavailable: string };

/** Everything a job definition declares except its handler, in plain data. */
export interface JobDescription {
  name: string;
  payload: PayloadShape;
  retry: {
    /** Retries after the first attempt. */
    limit: number;
    delaySeconds: number;
    backoff: boolean;
    /** Runs in all, the first included. */
    maxAttempts: number;
    /** Seconds before each retry, in order (after an ordinary failure). */
    delaysSeconds: number[];
    /** A rate-limit error without its own retry-after waits this many times the delay. */
    rateLimitFactor: number;
  };
  timeoutSeconds: number;
  sideEffects: SideEffects;
  /**
   * Whatever else the definition declares as data (isolation, a memory limit, a schedule, and
   * what later versions add), as it declares it: a registry made by a newer cutover still lists
   * in full.
   */
  [declared: string]: unknown;
}

/** Described in their own shape (the schema as `payload`), or code: not copied as declared data. */
const DESCRIBED = new Set(['name', 'schema', 'handler', 'retry', 'timeoutSeconds', 'sideEffects', 'payload']);

/** The definition's other fields that are plain data. */
function declaredData(definition: AnyJobDefinition): Record<string, unknown> {
  return Object.fromEntries(Object.entries(definition).filter(([key, value]) => !DESCRIBED.has(key) && value !== undefined && typeof value !== 'function'));
}

/** The JSON Schema dialect asked of schema libraries: the one their converters must support. */
const TARGET = 'draft-2020-12';

function hasJsonSchemaConverter(schema: unknown): schema is StandardJSONSchemaV1 {
  const standard = (schema as { '~standard'?: { jsonSchema?: { input?: unknown } } })['~standard'];
  return typeof standard?.jsonSchema?.input === 'function';
}

/** A zod 4 schema made before zod implemented Standard JSON Schema (4.0, 4.1) still converts. */
function isZod4(schema: unknown): schema is z.ZodType {
  return typeof schema === 'object' && schema !== null && '_zod' in schema;
}

/**
 * The payload's JSON Schema, from the schema itself: Standard JSON Schema (zod >= 4.2, and any
 * library implementing it) first, then zod 4's own converter. The input side is described, as
 * that is what `enqueue` is given. A library that cannot convert, or a schema it cannot express
 * (a refinement, a custom type), is said as such rather than guessed at.
 */
export function payloadShape(definition: AnyJobDefinition): PayloadShape {
  const schema: unknown = definition.schema;
  const vendor = definition.schema['~standard'].vendor;
  try {
    if (hasJsonSchemaConverter(schema)) return { vendor, jsonSchema: schema['~standard'].jsonSchema.input({ target: TARGET }) };
    if (isZod4(schema)) return { vendor, jsonSchema: z.toJSONSchema(schema, { io: 'input', target: TARGET }) as Record<string, unknown> };
  } catch (error) {
    return { vendor, jsonSchema: null, unavailable: `${vendor} cannot express this schema as JSON Schema (${messageOf(error)})` };
  }
  return { vendor, jsonSchema: null, unavailable: `${vendor} schemas do not convert to JSON Schema (no Standard JSON Schema support)` };
}

export function describeJob(definition: AnyJobDefinition): JobDescription {
  const { retry } = definition;
  return {
    name: definition.name,
    payload: payloadShape(definition),
    retry: {
      limit: retry.limit,
      delaySeconds: retry.delaySeconds,
      backoff: retry.backoff,
      maxAttempts: maxAttempts(definition),
      delaysSeconds: Array.from({ length: retry.limit }, (_, index) => retryDelaySeconds(retry, index + 1, { kind: 'retryable' })),
      rateLimitFactor: RATE_LIMIT_FACTOR,
    },
    timeoutSeconds: definition.timeoutSeconds,
    sideEffects: definition.sideEffects,
    ...declaredData(definition),
  };
}

/** Every registered job type, by name. */
export function describeRegistry(registry: JobRegistry): JobDescription[] {
  return registry.names().map((name) => describeJob(registry.require(name)));
}
