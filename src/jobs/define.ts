import { createRequire } from 'node:module';
import type { StandardSchemaV1 } from '@standard-schema/spec';
import type { Pool } from '../db/pool.js';

export type Engine = 'LEGACY' | 'PGBOSS';
export type SideEffects = 'none' | 'idempotent' | 'external';
/**
 * Where a job runs on pg-boss: in the worker's process, or in a child process of its own with
 * the legacy runner's executor (a crash or a leak kills the child, not the worker). The legacy
 * runner runs every job in a child process whatever this says.
 */
export type Isolation = 'none' | 'process';

/** A recurring job: pg-boss's scheduler enqueues one job per tick through the RolloutManager. */
export interface JobSchedule {
  /**
   * A cron expression: minute hour day-of-month month day-of-week, optionally preceded by a
   * single second. pg-boss fires a schedule at most once a minute, so a seconds field that
   * names more than one second is refused.
   */
  cron: string;
  /** IANA time zone the expression is read in. @defaultValue 'UTC' */
  tz: string;
  /** The payload of every tick's job, validated against the type's schema. @defaultValue {} */
  payload: unknown;
}

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

/**
 * `Name` is the type's name as a literal and `Input` the schema's input type, both kept by
 * defineJob so a registry of definitions types `enqueue` (see JobTypesOf); a definition built by
 * hand without them takes any name and, at enqueue, its `Payload`.
 */
export interface JobDefinition<Payload = unknown, Result = unknown, Name extends string = string, Input = unknown> {
  name: Name;
  schema: StandardSchemaV1<Input, Payload>;
  handler: (payload: Payload, context: JobContext) => Promise<Result>;
  retry: RetryPolicy;
  timeoutSeconds: number;
  sideEffects: SideEffects;
  /** Optional only so definitions built by hand still type-check; defineJob always sets it. */
  isolation?: Isolation;
  /** The heap cap of the job's process, when it has one of its own (see JobDefinitionInput). */
  memoryLimitMb?: number;
  /** Set when the type is recurring (ops/schedules.ts enqueues its ticks). */
  schedule?: JobSchedule;
}

export interface JobDefinitionInput<Payload, Result, Input = unknown, Name extends string = string> {
  name: Name;
  schema: StandardSchemaV1<Input, Payload>;
  handler: (payload: Payload, context: JobContext) => Promise<Result>;
  /** @defaultValue `{ limit: 2, delaySeconds: 5, backoff: true }` */
  retry?: Partial<RetryPolicy>;
  /** @defaultValue 300 */
  timeoutSeconds?: number;
  /** @defaultValue 'none' */
  sideEffects?: SideEffects;
  /** @defaultValue 'none': in the pg-boss worker's process */
  isolation?: Isolation;
  /**
   * Heap cap in MiB (Node's --max-old-space-size) of the job's own process: a job that
   * outgrows it dies alone, as a retryable failure. Only for `isolation: 'process'`: an
   * in-process job shares the worker's heap. @defaultValue Node's own limit
   */
  memoryLimitMb?: number;
  /** Makes the type recurring: see JobSchedule. */
  schedule?: { cron: string; tz?: string; payload?: unknown };
}

/** The retry policy of a definition that sets none, and of a row whose type is unknown. */
export const DEFAULT_RETRY: RetryPolicy = { limit: 2, delaySeconds: 5, backoff: true };

const jobName = /^[A-Za-z0-9_.-]{1,100}$/;

/** One definition that both engines run the same way. */
export function defineJob<Payload, Result, const Name extends string = string, Input = unknown>(
  input: JobDefinitionInput<Payload, Result, Input, Name>,
): JobDefinition<Payload, Result, Name, Input> {
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
  const isolation = input.isolation ?? 'none';
  if (isolation !== 'none' && isolation !== 'process') {
    throw new TypeError(`${input.name}: isolation must be 'none' or 'process', got ${JSON.stringify(isolation)}`);
  }
  const { memoryLimitMb } = input;
  if (memoryLimitMb !== undefined) {
    if (!Number.isInteger(memoryLimitMb) || memoryLimitMb < 16 || memoryLimitMb > 65_536) {
      throw new TypeError(`${input.name}: memoryLimitMb must be an integer from 16 to 65536 (MiB), got ${JSON.stringify(memoryLimitMb)}`);
    }
    if (isolation !== 'process') throw new TypeError(`${input.name}: memoryLimitMb needs isolation: 'process' (an in-process job shares the worker's heap)`);
  }
  const schedule = input.schedule === undefined ? undefined : checkSchedule(input.name, input.schedule);
  return {
    name: input.name,
    schema: input.schema,
    handler: input.handler,
    retry,
    timeoutSeconds,
    sideEffects: input.sideEffects ?? 'none',
    isolation,
    ...(memoryLimitMb === undefined ? {} : { memoryLimitMb }),
    ...(schedule ? { schedule } : {}),
  };
}

/** The slice of cron-parser (pg-boss's own cron evaluator) that validation uses. */
interface CronParser {
  CronExpressionParser: {
    parse(expression: string, options: { tz?: string; strict?: boolean; currentDate?: Date }): { fields: { second: { values: readonly number[] } }; next(): unknown };
  };
}

let cronParser: CronParser | undefined;

/**
 * cron-parser (with luxon) costs ~100 ms to load cold: required on first use, so only registries
 * with recurring jobs pay for it, and a job process loading a registry without one never does.
 */
function loadCronParser(): CronParser {
  return (cronParser ??= createRequire(import.meta.url)('cron-parser') as CronParser);
}

/**
 * A schedule checked the way pg-boss's scheduler will read it (cron-parser, non-strict), with
 * one-line messages that say the rule.
 */
function checkSchedule(name: string, input: { cron: string; tz?: string; payload?: unknown }): JobSchedule {
  if (typeof input !== 'object' || input === null) throw new TypeError(`${name}: schedule must be { cron, tz? }, got ${JSON.stringify(input)}`);
  const { cron, tz = 'UTC' } = input;
  if (typeof cron !== 'string' || !cron.trim()) {
    throw new TypeError(`${name}: schedule.cron must be a cron expression such as '*/5 * * * *', got ${JSON.stringify(cron)}`);
  }
  if (typeof tz !== 'string' || !isTimeZone(tz)) {
    throw new TypeError(`${name}: schedule.tz must be an IANA time zone such as 'UTC' or 'Europe/Paris', got ${JSON.stringify(tz)}`);
  }
  const { CronExpressionParser } = loadCronParser();
  let seconds: readonly number[];
  try {
    const interval = CronExpressionParser.parse(cron, { tz, strict: false, currentDate: new Date() });
    interval.next(); // forces the zone to be applied: a bad one is only found here
    seconds = interval.fields.second.values;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new TypeError(`${name}: schedule.cron '${cron}' is not a valid cron expression (minute hour day-of-month month day-of-week): ${reason}`, { cause: error });
  }
  if (seconds.length !== 1) {
    throw new TypeError(`${name}: schedule.cron '${cron}' fires more than once a minute; pg-boss's scheduler fires a schedule at most once a minute, so give the seconds field one value or leave it out`);
  }
  return { cron, tz, payload: input.payload === undefined ? {} : input.payload };
}

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
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

/**
 * What each job type takes, by name: `input`, what `enqueue` accepts (the schema's input), and
 * `payload`, what handlers and the legacy adapter's `toRow` get (the schema's output).
 */
export type JobTypes = Record<string, { input: unknown; payload: unknown }>;

/** Job types not known to the compiler (a registry loaded from a module path): any name, any payload. */
export type UntypedJobs = Record<string, { input: unknown; payload: unknown }>;

/** The job type names of `Types`. */
export type JobName<Types extends JobTypes> = Extract<keyof Types, string>;

/** What `enqueue` takes for one definition: its schema's input, else (a schema typed only by its output) its payload. */
type InputOf<Definition extends AnyJobDefinition> =
  unknown extends StandardSchemaV1.InferInput<Definition['schema']> ? StandardSchemaV1.InferOutput<Definition['schema']> : StandardSchemaV1.InferInput<Definition['schema']>;

/**
 * The JobTypes of a list of definitions made with defineJob: `createRegistry([a, b])` is typed
 * by it. A list whose names are not literals (`AnyJobDefinition[]`) is UntypedJobs.
 */
export type JobTypesOf<Jobs extends readonly AnyJobDefinition[]> = string extends Jobs[number]['name']
  ? UntypedJobs
  : { [Definition in Jobs[number] as Definition['name']]: { input: InputOf<Definition>; payload: StandardSchemaV1.InferOutput<Definition['schema']> } };

/** `(type, payload)` of one of `Types`' job types, as a union that a check of `type` narrows to that type's payload. */
export type JobArguments<Types extends JobTypes> = { [Type in JobName<Types>]: [type: Type, payload: Types[Type]['payload']] }[JobName<Types>];
