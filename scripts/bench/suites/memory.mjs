// Memory per concurrent job, each engine in a worker process of its own holding `concurrency`
// sleeping jobs at once: the process's resident memory (the legacy runner's with its children,
// summed from /proc) at its peak while all of them run, divided by the jobs in flight.
import { setTimeout as sleep } from 'node:timers/promises';
import { produce, sideBySide, startWorkerProcess, treeRss, until, withDatabase } from '../lib.mjs';

const TYPE = 'bench.sleep';

async function rssPerJob(services, engine, { concurrency, holdMs, settleMs, sampleMs }) {
  const { pool, databaseUrl } = services;
  const worker = await startWorkerProcess({ engine: engine.toLowerCase(), databaseUrl, concurrency, types: [TYPE] });
  try {
    const before = await pool.query(`SELECT count(*)::int AS n FROM "Job" WHERE type = $1 AND status = 'COMPLETED'`, [TYPE]);
    await produce(services, { type: TYPE, count: concurrency, percent: engine === 'LEGACY' ? 0 : 100, payload: () => ({ ms: holdMs }) });
    await until(pool, `SELECT count(*) AS n FROM "Job" WHERE type = $1 AND status = 'RUNNING'`, concurrency, { everyMs: 20, values: [TYPE] });
    // Children take a moment to load their modules; sample once every job is under way.
    await sleep(settleMs);
    let peak = { bytes: 0, processes: 0 };
    for (const end = Date.now() + sampleMs; Date.now() < end; await sleep(100)) {
      const sample = await treeRss(worker.pid);
      if (sample.bytes > peak.bytes) peak = sample;
    }
    const { rows } = await pool.query(`SELECT count(*)::int AS n FROM "Job" WHERE type = $1 AND status = 'RUNNING'`, [TYPE]);
    if (rows[0].n !== concurrency) throw new Error(`${engine}: ${rows[0].n} of ${concurrency} jobs still ran at the end of the sample; hold them longer`);
    await until(pool, `SELECT count(*) AS n FROM "Job" WHERE type = $1 AND status = 'COMPLETED'`, before.rows[0].n + concurrency, { everyMs: 50, values: [TYPE] });
    return { perJob: peak.bytes / concurrency / 2 ** 20, totalMiB: peak.bytes / 2 ** 20, processes: peak.processes };
  } finally {
    await worker.stop();
  }
}

export default {
  name: 'memory',
  rows: [{ id: 'rss-per-job', name: 'RSS per concurrent job, pg-boss worker vs legacy runner with its children', unit: 'MiB', goal: { ratio: ['<=', 0.5], text: '≤ 0.5×' } }],
  params: {
    small: { concurrency: 8, holdMs: 2500, settleMs: 700, sampleMs: 500 },
    full: { concurrency: 8, holdMs: 5000, settleMs: 1500, sampleMs: 1500 },
  },
  async once({ databases, params, run }) {
    return withDatabase(databases, `memory_${run}`, async (services) => {
      const { ours, reference } = await sideBySide(
        run,
        () => rssPerJob(services, 'PGBOSS', params),
        () => rssPerJob(services, 'LEGACY', params),
      );
      return { 'rss-per-job': { ours: ours.perJob, reference: reference.perJob, detail: { concurrency: params.concurrency, ours, reference } } };
    });
  },
};
