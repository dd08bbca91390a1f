import { defineJob } from 'cutover/jobs';
import { z } from 'zod';

export default [
  defineJob({
    name: 'order.fulfil',
    // failTimes: the warehouse is down for the first runs.
    schema: z.object({ orderId: z.number().int(), failTimes: z.number().int().min(0).optional() }),
    timeoutSeconds: 30,
    retry: { limit: 2, delaySeconds: 0, backoff: false },
    handler: async ({ orderId, failTimes }, { rowId, engine, attempt, db }) => {
      // A step row pointing at the run's own (uuid) id, on either engine, with the run's "retried"
      // as the team's queries read it while the step runs.
      await db().query(
        `INSERT INTO "WorkflowStep" ("runId", name, engine, attempt, "retriedSeen") SELECT $1::uuid, 'reserve', $2, $3, retried FROM "WorkflowRun" WHERE id = $1::uuid`,
        [rowId, engine, attempt],
      );
      if (failTimes && attempt <= failTimes) throw new Error(`order ${orderId}: warehouse unavailable`);
      return { orderId };
    },
  }),
];
