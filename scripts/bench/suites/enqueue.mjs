// The dual-write's price, side by side in one database: RolloutManager.enqueue (the Job row and
// the pg-boss job in one transaction) vs a raw boss.send, one job at a time; enqueueMany vs a
// raw boss.insert, in batches of 1,000. Every job routed to pg-boss.
import { NOOP, rolloutManager, seconds, sideBySide, withDatabase } from '../lib.mjs';

export default {
  name: 'enqueue',
  rows: [
    { id: 'enqueue-vs-send', name: 'RolloutManager.enqueue vs raw boss.send (time per job)', unit: 'ms', goal: { ratio: ['<=', 1.5], text: '≤ 1.5×' } },
    { id: 'enqueue-many-vs-insert', name: 'enqueueMany vs raw boss.insert, batches of 1000', unit: 'jobs/s', goal: { ratio: ['>=', 0.7], text: '≥ 0.7×' } },
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
        const many = await sideBySide(
          run,
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
        );
        return { 'enqueue-vs-send': single, 'enqueue-many-vs-insert': many };
      } finally {
        await flags.close();
      }
    });
  },
};
