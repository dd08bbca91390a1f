import type { Pool } from '../db/pool.js';
import { UsageError } from '../support/errors.js';
import type { JobDefinition } from '../jobs/define.js';
import type { JobFailure } from '../jobs/errors.js';
import type { JobRegistry } from '../jobs/registry.js';
import type { Logger } from '../support/log.js';
import { executeInChild } from '../isolation/executor.js';
import type { BossJob } from './settle.js';

// Process isolation on pg-boss (a type's `isolation: 'process'`): the job runs in a child
// process through the same executor and child entry as every legacy job, so a crash, a leak or
// a hang ends that process and never the worker. Its outcome then settles like an in-process
// one (group commit for successes, storeFailure for failures); a process that died without a
// result is a retryable failure, as on legacy.

/** What a handler's run came to, in process or in a child. */
export type RunOutcome = { ok: true; result: unknown } | { ok: false; failure: JobFailure };

export interface IsolatedRunOptions {
  registry: JobRegistry;
  /** Handed to the child for handlers that write (`context.db()`). */
  databaseUrl: string;
  log: Logger;
  /** Between SIGTERM and SIGKILL for a child that overran or is stopped. */
  killGraceMs: number;
  /** The job process entry. @defaultValue the compiled isolation/child.js */
  entry?: string;
}

/**
 * Runs one fetched job in a child process. Its timeout is the type's; pg-boss's signal for the
 * job (worker shutdown past its grace, expiry, a lost claim) kills the child the same way:
 * SIGTERM, then SIGKILL after `killGraceMs`.
 */
export async function runIsolated(definition: JobDefinition, job: BossJob, rowId: string, options: IsolatedRunOptions): Promise<RunOutcome> {
  const { registry, log } = options;
  const outcome = await executeInChild(
    {
      jobId: job.id,
      rowId,
      type: definition.name,
      payload: job.data,
      attempt: job.retryCount + 1,
      engine: 'PGBOSS',
      ...(registry.module ? { registryModule: registry.module } : {}),
    },
    {
      timeoutMs: definition.timeoutSeconds * 1000,
      killGraceMs: options.killGraceMs,
      databaseUrl: options.databaseUrl,
      signal: job.signal,
      ...(definition.memoryLimitMb ? { memoryLimitMb: definition.memoryLimitMb } : {}),
      ...(options.entry ? { entry: options.entry } : {}),
      // The same lines an in-process handler's context.log writes, plus the child's stderr.
      onLog: ({ message, fields, stream }) =>
        stream === 'stderr' ? log.warn({ jobId: job.id, type: definition.name, stream }, message) : log.info({ jobId: job.id, ...fields }, message),
    },
  );
  return outcome.ok ? { ok: true, result: outcome.result } : { ok: false, failure: outcome.failure };
}

/**
 * A child process loads the registry from its module; one built in memory (createRegistry
 * without a module) cannot follow it there, and the child would load the demo registry instead.
 */
export function assertIsolatable(registry: JobRegistry, types: readonly string[]): void {
  if (registry.module) return;
  const isolated = types.filter((type) => registry.require(type).isolation === 'process');
  if (isolated.length) {
    throw new UsageError(`job type ${isolated.join(', ')} asks for isolation: 'process', but its registry was not loaded from a module (loadRegistry(path)), so a job process could not load it`);
  }
}

/** The database URL of our pool, for job processes, when the caller gave none. */
export function poolDatabaseUrl(pool: Pool): string | undefined {
  return pool.options.connectionString;
}
