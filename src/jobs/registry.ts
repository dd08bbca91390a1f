import { isAbsolute, resolve } from 'node:path';
import { importUserModule } from '../support/modules.js';
import { InvalidPayloadError, UnknownJobTypeError, UsageError, messageOf } from '../support/errors.js';
import { defineJob, type AnyJobDefinition, type JobDefinition, type JobTypes, type JobTypesOf, type UntypedJobs } from './define.js';

/**
 * The largest payload cutover admits, as JSON text in UTF-8: 1 MiB. A job queue carries
 * references to work, not the work itself; pg-boss keeps every payload in its job table (and
 * copies a failed one into the dead letter queue), and each fetch reads whole payloads, so a
 * few huge ones slow every worker. `enqueue` refuses a bigger one; `migrate` leaves a bigger
 * legacy row on legacy, quarantined with this reason. A job already in the legacy table runs
 * there whatever its size (see `validate`'s `sizeLimit`).
 */
export const MAX_PAYLOAD_BYTES = 1024 * 1024;

export interface ValidateOptions {
  /**
   * Refuse a payload over MAX_PAYLOAD_BYTES. Off only where a job that was already admitted is
   * about to run (the legacy child): refusing it there would fail work the legacy system ran.
   * @defaultValue true
   */
  sizeLimit?: boolean;
}

/** `Types`: each job type's payloads, when the compiler knows them (createRegistry over defineJob's definitions). */
export interface JobRegistry<Types extends JobTypes = UntypedJobs> {
  /** The module a worker process loads to get this registry; undefined for the demo registry. */
  readonly module: string | undefined;
  /**
   * Never set: it carries `Types` for the compiler alone, so `createCutover` and the
   * RolloutManager type `enqueue` from the registry they are given (Standard Schema's `types`
   * does the same).
   */
  readonly '~types'?: Types;
  names(): string[];
  get(name: string): JobDefinition | undefined;
  /** The definition, or UnknownJobTypeError naming the known types. */
  require(name: string): JobDefinition;
  /**
   * The parsed payload, or InvalidPayloadError saying what is wrong: not storable as JSON in
   * Postgres (a NUL character, a value JSON cannot hold), over MAX_PAYLOAD_BYTES, or failing
   * the type's schema. An unknown type is an UnknownJobTypeError.
   */
  validate(name: string, payload: unknown, options?: ValidateOptions): Promise<unknown>;
}

/** Half of a UTF-16 surrogate pair without its other half: not Unicode, and jsonb refuses it. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Why Postgres's jsonb could not store this value, if it could not. */
function unstorable(value: unknown, depth = 0): string | undefined {
  if (typeof value === 'string') {
    if (value.includes('\u0000')) return 'contains a NUL character (\\u0000), which Postgres cannot store';
    if (LONE_SURROGATE.test(value)) return 'contains a lone UTF-16 surrogate (not valid Unicode), which Postgres cannot store';
    return undefined;
  }
  if (depth > 1000) return 'is nested more than 1000 levels deep';
  if (Array.isArray(value)) {
    for (const item of value) {
      const why = unstorable(item, depth + 1);
      if (why) return why;
    }
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      const why = unstorable(key, depth + 1) ?? unstorable(item, depth + 1);
      if (why) return why;
    }
  }
  return undefined;
}

/**
 * What a payload must be before its schema is even asked: JSON, within the size limit, and
 * storable in jsonb. Checked first so a 50 MiB payload is refused without being walked twice.
 */
function assertStorable(name: string, payload: unknown, sizeLimit: boolean): void {
  let json: string | undefined;
  try {
    json = JSON.stringify(payload);
  } catch (error) {
    throw new InvalidPayloadError(name, `must be JSON (${messageOf(error)})`);
  }
  if (json === undefined) throw new InvalidPayloadError(name, `must be a JSON value, got ${typeof payload}`);
  if (sizeLimit) {
    const bytes = Buffer.byteLength(json, 'utf8');
    if (bytes > MAX_PAYLOAD_BYTES) {
      // Exact bytes: "1.0 MiB, over the limit of 1.0 MiB" would be no help just past the limit.
      throw new InvalidPayloadError(name, `payload is ${bytes} bytes of JSON, over the limit of ${MAX_PAYLOAD_BYTES} (1 MiB); pass a reference (an id, a URL) instead of the data`);
    }
  }
  const why = unstorable(payload);
  if (why) throw new InvalidPayloadError(name, `payload ${why}`);
}

/**
 * A registry of these definitions. Given defineJob's definitions as a list (not an
 * `AnyJobDefinition[]` variable), it is typed by them: `enqueue` then takes only their names
 * and payloads.
 */
export function createRegistry<const Jobs extends readonly AnyJobDefinition[]>(definitions: Jobs, module?: string): JobRegistry<JobTypesOf<Jobs>> {
  const byName = new Map<string, JobDefinition>();
  for (const definition of definitions) {
    // A definition made by hand rather than with defineJob must still keep its rules: a type name
    // becomes a queue name, a column value and a log field, so it may not carry SQL or controls.
    try {
      defineJob(definition);
    } catch (error) {
      throw new UsageError(`job registry${module ? ` ${module}` : ''}: ${messageOf(error)}`, { cause: error });
    }
    if (byName.has(definition.name)) throw new UsageError(`job type '${definition.name}' is defined twice`);
    byName.set(definition.name, definition);
  }
  const registry: JobRegistry<JobTypesOf<Jobs>> = {
    module,
    names: () => [...byName.keys()].sort(),
    get: (name) => byName.get(name),
    require(name) {
      const definition = byName.get(name);
      if (!definition) throw new UnknownJobTypeError(name, registry.names());
      return definition;
    },
    async validate(name, payload, options = {}) {
      const definition = registry.require(name);
      assertStorable(name, payload, options.sizeLimit ?? true);
      const result = await definition.schema['~standard'].validate(payload);
      if (result.issues) {
        const detail = result.issues
          .map((issue) => {
            const path = (issue.path ?? []).map((p) => (typeof p === 'object' ? String(p.key) : String(p))).join('.');
            return path ? `${path}: ${issue.message}` : issue.message;
          })
          .join('; ');
        throw new InvalidPayloadError(name, detail);
      }
      return result.value;
    },
  };
  return registry;
}

function isDefinition(value: unknown): value is JobDefinition {
  return typeof value === 'object' && value !== null && 'name' in value && 'handler' in value && 'schema' in value;
}

/**
 * Loads a team's job registry from a module whose default export (or `jobs` export) is an
 * array of definitions made with defineJob. Without a module, the demo registry.
 */
export async function loadRegistry(modulePath?: string, cwd = process.cwd()): Promise<JobRegistry> {
  if (!modulePath) {
    const { demoJobs } = await import('./demo.js');
    return createRegistry(demoJobs);
  }
  const absolute = isAbsolute(modulePath) ? modulePath : resolve(cwd, modulePath);
  let loaded: Record<string, unknown>;
  try {
    loaded = await importUserModule(absolute);
  } catch (error) {
    throw new UsageError(`cannot load the job registry ${absolute}: ${messageOf(error)}`, { cause: error });
  }
  const exported = loaded.default ?? loaded.jobs;
  if (!Array.isArray(exported) || !exported.every(isDefinition)) {
    throw new UsageError(`job registry ${absolute} must export (default or 'jobs') an array of defineJob(...) definitions`);
  }
  const registry = createRegistry(exported, absolute);
  await assertSchedulePayloads(registry);
  return registry;
}

/**
 * A recurring type's payload is enqueued on every tick: one its schema refuses would fail each
 * tick, silently between deploys. Checked once, when the registry loads (schemas may be async,
 * so not in defineJob).
 */
export async function assertSchedulePayloads(registry: JobRegistry): Promise<void> {
  for (const name of registry.names()) {
    const schedule = registry.require(name).schedule;
    if (!schedule) continue;
    try {
      await registry.validate(name, schedule.payload);
    } catch (error) {
      throw new UsageError(`job registry${registry.module ? ` ${registry.module}` : ''}: ${name}: schedule.payload is not a valid payload: ${messageOf(error)}`, { cause: error });
    }
  }
}
