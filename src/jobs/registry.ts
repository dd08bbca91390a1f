import { isAbsolute, resolve } from 'node:path';
import { importUserModule } from '../modules.js';
import { InvalidPayloadError, UnknownJobTypeError, UsageError, messageOf } from '../errors.js';
import type { AnyJobDefinition, JobDefinition } from './define.js';

export interface JobRegistry {
  /** The module a worker process loads to get this registry; undefined for the demo registry. */
  readonly module: string | undefined;
  names(): string[];
  get(name: string): JobDefinition | undefined;
  /** The definition, or UnknownJobTypeError naming the known types. */
  require(name: string): JobDefinition;
  /** The parsed payload, or InvalidPayloadError saying what is wrong. */
  validate(name: string, payload: unknown): Promise<unknown>;
}

export function createRegistry(definitions: readonly AnyJobDefinition[], module?: string): JobRegistry {
  const byName = new Map<string, JobDefinition>();
  for (const definition of definitions) {
    if (byName.has(definition.name)) throw new UsageError(`job type '${definition.name}' is defined twice`);
    byName.set(definition.name, definition);
  }
  const registry: JobRegistry = {
    module,
    names: () => [...byName.keys()].sort(),
    get: (name) => byName.get(name),
    require(name) {
      const definition = byName.get(name);
      if (!definition) throw new UnknownJobTypeError(name, registry.names());
      return definition;
    },
    async validate(name, payload) {
      const result = await registry.require(name).schema['~standard'].validate(payload);
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
  return createRegistry(exported, absolute);
}
