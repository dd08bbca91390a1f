// The dual-write's price, side by side in one database: RolloutManager.enqueue (the Job row and
// the pg-boss job in one transaction) vs a raw boss.send, one job at a time; enqueueMany vs a
// raw boss.insert, and vs the floor of the writes it must do, in batches of 1,000. Every job
// routed to pg-boss.
import { randomUUID } from 'node:crypto';
import { floorBatch, inOrder, NOOP, rolloutManager, seconds, sideBySide, withDatabase } from '../lib.mjs';

/**
 * The tracking rows as one plain multi-row INSERT: only the columns whose values a pg-boss job's
 * row must hold (status, attempts and the times are the table's defaults, as enqueueMany writes
 * them); the type, engine and route reason are the same for every row of the batch, so they are
 * literals. bench.noop retries nothing: one attempt.
 */
const TRACKING_ROWS = `INSERT INTO "Job" (id, type, payload, priority, "maxAttempts", engine, "pgbossJobId", "routeReason", bucket)
  SELECT t.id, '${NOOP}', t.payload, 0, 1, 'PGBOSS', t.id, 'bucket', t.bucket FROM unnest($1::uuid[], $2::jsonb[], $3::int[]) AS t(id, payload, bucket)`;

/** A batch for the floor, made before anything is timed: pg-boss's jobs and the rows' columns. */
export function floorInput(payloads) {
  const ids = payloads.map(() => randomUUID());
  return {
    jobs: payloads.map((data, i) => ({ id: ids[i], data })),
    values: [ids, payloads.map((payload) => JSON.stringify(payload)), payloads.map(() => Math.floor(Math.random() * 10_000))],
  };
}

/**
 * The floor of what enqueueMany must write for a batch: in one transaction, pg-boss's insert of
 * the jobs and the tracking rows.
 */
export const floorWrite = (services, batch) => floorBatch(services, NOOP, batch.jobs, TRACKING_ROWS, batch.values);

export default {
  name: 'enqueue',
  rows: [
    { id: 'enqueue-vs-send', name: 'RolloutManager.enqueue vs raw boss.send (time per job)', unit: 'ms', goal: { ratio: ['<=', 1.5], text: '≤ 1.5×' } },
    { id: 'enqueue-many-vs-insert', name: 'enqueueMany vs raw boss.insert, batches of 1000', unit: 'jobs/s', goal: { ratio: ['>=', 0.7], text: '≥ 0.7×' } },
    {
      id: 'enqueue-many-vs-floor',
      name: 'enqueueMany vs the floor of its writes (boss.insert + plain INSERT of the rows, one transaction), batches of 1000',
      unit: 'jobs/s',
      goal: { ratio: ['>=', 0.85], text: '≥ 0.85×' },
    },
  ],
  params: { small: { jobs: 300, batches: 5 }, full: { jobs: 2000, batches: 30 } },
  async once({ databases, params, run }) {
    return withDatabase(databases, `enqueue_${run}`, async (services) => {
      const { boss } = services;
      const { manager, flags } = await rolloutManager(services, 100);
      try {
        let n = 0;
        const single = await sideBySide(
          run,
          async () => {
            const start = performance.now();
            for (let i = 0; i < params.jobs; i++) await manager.enqueue(NOOP, { n: n++ });
            return (seconds(start) * 1000) / params.jobs;
          },
          async () => {
            const start = performance.now();
            for (let i = 0; i < params.jobs; i++) await boss.send(NOOP, { n: n++ });
            return (seconds(start) * 1000) / params.jobs;
          },
        );
        const batch = () => Array.from({ length: 1000 }, () => ({ n: n++ }));
        // enqueueMany, raw insert, floor; odd runs the other way round, so no side always goes first.
        const steps = [
          async () => {
            const batches = Array.from({ length: params.batches }, () => batch().map((payload) => ({ payload })));
            const start = performance.now();
            for (const items of batches) await manager.enqueueMany(NOOP, items);
            return (params.batches * 1000) / seconds(start);
          },
          async () => {
            const batches = Array.from({ length: params.batches }, () => batch().map((data) => ({ data })));
            const start = performance.now();
            for (const jobs of batches) await boss.insert(NOOP, jobs);
            return (params.batches * 1000) / seconds(start);
          },
          async () => {
            const batches = Array.from({ length: params.batches }, () => floorInput(batch()));
            const start = performance.now();
            for (const floor of batches) await floorWrite(services, floor);
            return (params.batches * 1000) / seconds(start);
          },
        ];
        const [ours, insertRate, floorRate] = run % 2 ? (await inOrder(steps.toReversed())).toReversed() : await inOrder(steps);
        return {
          'enqueue-vs-send': single,
          'enqueue-many-vs-insert': { ours, reference: insertRate },
          'enqueue-many-vs-floor': { ours, reference: floorRate },
        };
      } finally {
        await flags.close();
      }
    });
  },
};
