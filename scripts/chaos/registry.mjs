// The chaos run's job registry (scripts/chaos/run.mjs), loaded by every worker process, the
// producer and the operator commands through --registry. It imports the built package, as a
// team's registry imports cutover.
//
// Every execution of every job records itself, from inside the handler and before doing
// anything else, in one statement:
//   - a "DemoDelivery" row (jobId = the id the engine ran it under, engine), as the demo's
//     notification.send does, so double runs can be counted by anyone;
//   - a "ChaosExec" row (created by the harness) with what the harness needs to explain it:
//     the logical job `k` (the chain's first row id, carried in the payload, so a legacy retry
//     row, a migrated job and a rolled back job all name the same logical job), the process
//     that ran it and the worker that owned it (for LEGACY the runner is the child's parent),
//     and whether this execution fails or stalls by design.
// The designed behaviour is decided in that same statement from the payload and the logical
// job's earlier executions, so it is deterministic whichever engine, attempt number or row
// runs it:
//   chaos.fast    succeeds (after n % 16 ms of "work", as chaos.flaky does).
//   chaos.flaky   fails its first execution when payload.n is even, then succeeds.
//   chaos.doomed  fails every execution: the chain must stop after exactly maxAttempts runs.
//   chaos.stall   on its first execution blocks the event loop (busy loop) for STALL_MS, past
//                 its timeout (1 s) and its pg-boss expiry (timeout + 1 s grace = 2 s), then
//                 succeeds; later executions succeed at once.
import { z } from 'zod';
import { defineJob } from '../../dist/jobs/index.js';

export const STALL_MS = Number(process.env.CHAOS_STALL_MS ?? 5000);

const payload = z.object({ k: z.string().uuid(), n: z.number().int().nonnegative() });

const RECORD = `
  WITH prior AS (SELECT count(*)::int AS n FROM "ChaosExec" WHERE k = $1::uuid),
  ins AS (
    INSERT INTO "ChaosExec" (k, "jobId", engine, attempt, pid, "workerPid", "designedFail", stall)
    SELECT $1::uuid, $2, $3, $4, $5, $6, $7::boolean OR ($8::boolean AND prior.n = 0), $9::boolean AND prior.n = 0
      FROM prior
    RETURNING "designedFail", stall),
  delivery AS (INSERT INTO "DemoDelivery" ("jobId", engine) VALUES ($2, $3))
  SELECT "designedFail", stall FROM ins`;

async function record(payload, context, rule) {
  const workerPid = context.engine === 'LEGACY' ? process.ppid : process.pid;
  const { rows } = await context
    .db()
    .query(RECORD, [payload.k, context.jobId, context.engine, context.attempt, process.pid, workerPid, rule.alwaysFail ?? false, rule.failFirst ?? false, rule.stallFirst ?? false]);
  return rows[0];
}

/** A few milliseconds of work after the record, so a kill can land between the run and its outcome. */
const work = (job) => new Promise((resolve) => setTimeout(resolve, job.n % 16));

function busyLoop(ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // Blocks the event loop on purpose: the worker stalls, its timers and heartbeats with it.
  }
}

const common = { schema: payload, timeoutSeconds: 8, sideEffects: 'external' };

export default [
  defineJob({
    ...common,
    name: 'chaos.fast',
    retry: { limit: 2, delaySeconds: 1, backoff: false },
    async handler(job, context) {
      await record(job, context, {});
      await work(job);
      return { n: job.n };
    },
  }),
  defineJob({
    ...common,
    name: 'chaos.flaky',
    retry: { limit: 2, delaySeconds: 2, backoff: false },
    async handler(job, context) {
      const run = await record(job, context, { failFirst: job.n % 2 === 0 });
      await work(job);
      if (run.designedFail) throw new Error('chaos: designed failure of the first execution');
      return { n: job.n };
    },
  }),
  defineJob({
    ...common,
    name: 'chaos.doomed',
    retry: { limit: 2, delaySeconds: 1, backoff: false },
    async handler(job, context) {
      await record(job, context, { alwaysFail: true });
      throw new Error('chaos: designed failure of every execution');
    },
  }),
  defineJob({
    ...common,
    name: 'chaos.stall',
    timeoutSeconds: 1,
    retry: { limit: 2, delaySeconds: 3, backoff: false },
    async handler(job, context) {
      const run = await record(job, context, { stallFirst: true });
      if (run.stall) busyLoop(STALL_MS);
      return { n: job.n, stalled: run.stall };
    },
  }),
];
