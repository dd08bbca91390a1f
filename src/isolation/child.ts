// The process that runs one job (DESIGN §5): isolation like the legacy system, memory returned
// to the OS on exit. The legacy runner runs every job here; the pg-boss worker runs the types
// that ask for `isolation: 'process'`. It speaks the JSON-lines protocol of ./protocol.ts.
import { text } from 'node:stream/consumers';
import { createPool, type Pool } from '../db/pool.js';
import { classifyFailure, NonRetryableError } from '../jobs/errors.js';
import { loadRegistry } from '../jobs/registry.js';
import { storableResult } from '../jobs/result.js';
import { CHILD_DATABASE_URL_ENV, type ChildJob, type ChildMessage } from './protocol.js';
import { messageOf } from '../support/errors.js';

function send(message: ChildMessage): Promise<void> {
  return new Promise((resolve) => process.stdout.write(`${JSON.stringify(message)}\n`, () => resolve()));
}

// The worker that started this process is gone (its IPC channel closed, see ./executor.ts):
// nobody reads the outcome, and the job is someone else's now (pg-boss hands it out again once
// it expires, the legacy runner's stale recovery resets it). Going on would run it twice at
// once, unowned; stop at once, reporting nothing. A transaction the handler had open is rolled
// back as its connection drops.
process.once('disconnect', () => process.exit(1));

async function main(): Promise<number> {
  const job = JSON.parse(await text(process.stdin)) as ChildJob;
  const engine = job.engine ?? 'LEGACY';
  const controller = new AbortController();
  process.once('SIGTERM', () => controller.abort(new Error('terminated')));
  let pool: Pool | undefined;
  try {
    const registry = await loadRegistry(job.registryModule);
    let payload: unknown;
    try {
      // An unknown type or a payload that fails its schema can never succeed: no retry.
      // The size limit guards what enters a queue; a job already admitted runs whatever its size.
      payload = await registry.validate(job.type, job.payload, { sizeLimit: false });
    } catch (error) {
      throw new NonRetryableError(messageOf(error));
    }
    const result = await registry.require(job.type).handler(payload, {
      jobId: job.jobId,
      rowId: job.rowId ?? job.jobId,
      attempt: job.attempt,
      engine,
      signal: controller.signal,
      db: () => (pool ??= createPool(requireDatabaseUrl(), { max: 1, applicationName: engine === 'LEGACY' ? 'cutover-legacy-job' : 'cutover-pgboss-job' })),
      log: (message, fields) => void send(fields ? { type: 'log', message, fields } : { type: 'log', message }),
    });
    // A success is final: a result JSON cannot encode is stored as far as it can be, and the
    // row's logs say what was changed, rather than the encoding error failing the job.
    const storable = storableResult(result);
    for (const note of storable.notes) await send({ type: 'log', message: `result stored as far as it could be: ${note}` });
    await send({ type: 'result', result: storable.value ?? null });
    return 0;
  } catch (error) {
    await send({ type: 'error', error: classifyFailure(error) });
    return 1;
  } finally {
    await pool?.end().catch(() => undefined);
  }
}

function requireDatabaseUrl(): string {
  const url = process.env[CHILD_DATABASE_URL_ENV];
  if (!url) throw new Error(`${CHILD_DATABASE_URL_ENV} is not set`);
  return url;
}

process.exit(await main());
