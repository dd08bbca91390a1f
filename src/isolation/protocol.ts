import type { Engine } from '../jobs/define.js';
import type { JobFailure } from '../jobs/errors.js';

/**
 * The job-process protocol both engines speak (the legacy runner for every job, the pg-boss
 * worker for types with `isolation: 'process'`): the job arrives as one JSON document on
 * stdin; the child answers with JSON lines on stdout. A `result` line is authoritative
 * whatever the exit code is.
 */
export interface ChildJob {
  /** The job's id in the engine running it (the row id on legacy, the pg-boss id on pg-boss). */
  jobId: string;
  type: string;
  payload: unknown;
  attempt: number;
  /** The job registry module to load; absent for the demo registry. */
  registryModule?: string;
  /** @defaultValue 'LEGACY' */
  engine?: Engine;
  /** The legacy row's own id, for `context.rowId`. @defaultValue jobId */
  rowId?: string;
}

export type ChildMessage =
  | { type: 'log'; message: string; fields?: Record<string, unknown> }
  | { type: 'result'; result: unknown }
  | { type: 'error'; error: JobFailure };

/** Env var through which the child gets the database URL for handlers that write. */
export const CHILD_DATABASE_URL_ENV = 'CUTOVER_JOB_DATABASE_URL';

export function parseChildLine(line: string): ChildMessage | undefined {
  const trimmed = line.trim();
  if (!trimmed.startsWith('{')) return undefined;
  try {
    const message = JSON.parse(trimmed) as Partial<ChildMessage>;
    if (message.type === 'log' && typeof message.message === 'string') return message as ChildMessage;
    if (message.type === 'result' && 'result' in message) return message as ChildMessage;
    if (message.type === 'error' && typeof message.error === 'object' && message.error !== null) return message as ChildMessage;
  } catch {
    // Not protocol: ordinary output, kept as a log line by the caller.
  }
  return undefined;
}
