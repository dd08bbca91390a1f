// migrate on a legacy backlog, side by side in one database with two references: a naive
// per-row script (find one row, send it, flip it: what a hand-written migration does) and a raw
// boss.insert of the same jobs (same payloads, priorities and retry budgets, new ids), in chunks
// of 1,000, 2 at once like migrate: the floor, pg-boss's own insert with nothing around it.
import { randomUUID } from 'node:crypto';
import pLimit from 'p-limit';
import { migrateBacklog } from '../../../dist/moves/migrate.js';
import { inOrder, log, seconds, withDatabase } from '../lib.mjs';

const TYPE = 'evaluation.process';

export async function seedBacklog(pool, rows) {
  await pool.query(
    `INSERT INTO "Job" (id, type, payload, "maxAttempts", "createdAt", "updatedAt")
     SELECT gen_random_uuid(), $1, jsonb_build_object('documentId', 'doc-' || i, 'agentId', 'agent-' || (i % 9)), 3,
            (now() AT TIME ZONE 'UTC') - make_interval(secs => i % 3600), now() AT TIME ZONE 'UTC'
       FROM generate_series(1, $2) AS i`,
    [TYPE, rows],
  );
  await pool.query('VACUUM ANALYZE "Job"');
}

export async function batched(services, rows) {
  const start = performance.now();
  const summary = await migrateBacklog({ ...services, log, actor: 'bench', batchSize: 1000, concurrency: 2, limit: rows });
  const rate = rows / seconds(start);
  if (summary.moved !== rows) throw new Error(`migrate moved ${summary.moved} of ${rows}`);
  return rate;
}

/** One row at a time: find, send, flip. Not in one transaction (that would be slower still). */
async function naive({ pool, boss }, rows) {
  const start = performance.now();
  for (let n = 0; n < rows; n++) {
    const { rows: found } = await pool.query(`SELECT id, type, payload FROM "Job" WHERE status = 'PENDING' AND engine = 'LEGACY' LIMIT 1`);
    const row = found[0];
    if (!row) throw new Error(`the naive script ran out of rows after ${n}`);
    await boss.send(row.type, row.payload, { id: row.id });
    await pool.query(`UPDATE "Job" SET engine = 'PGBOSS', "pgbossJobId" = id WHERE id = $1`, [row.id]);
  }
  return rows / seconds(start);
}

/** The jobs migrate will insert for `rows` backlog rows, as data, read before anything is timed. */
export async function sameJobs(pool, rows) {
  const { rows: backlog } = await pool.query(
    `SELECT payload, priority, "maxAttempts" FROM "Job" WHERE status = 'PENDING' AND engine = 'LEGACY' ORDER BY priority DESC, "createdAt" LIMIT $1`,
    [rows],
  );
  return backlog.map((row) => ({ data: row.payload, priority: row.priority, retryLimit: row.maxAttempts - 1 }));
}

/** Those jobs, with new ids (migrate's own ids are the rows'), straight into pg-boss. */
export async function rawInsert({ boss }, jobs) {
  const withIds = jobs.map((job) => ({ id: randomUUID(), ...job }));
  const chunks = Array.from({ length: Math.ceil(withIds.length / 1000) }, (_, i) => withIds.slice(i * 1000, (i + 1) * 1000));
  const limit = pLimit(2);
  const start = performance.now();
  await Promise.all(chunks.map((chunk) => limit(() => boss.insert(TYPE, chunk))));
  return withIds.length / seconds(start);
}

export default {
  name: 'migrate',
  rows: [
    { id: 'migrate-vs-naive', name: 'migrate backlog vs naive per-row script', unit: 'rows/s', goal: { ratio: ['>=', 50], text: '≥ 50×' } },
    { id: 'migrate-vs-insert', name: 'migrate backlog vs raw boss.insert of the same jobs', unit: 'rows/s', goal: { ratio: ['>=', 0.6], text: '≥ 0.6×' } },
  ],
  params: { small: { rows: 10_000, naiveRows: 300 }, full: { rows: 100_000, naiveRows: 3000 } },
  async once({ databases, params, run, warmup }) {
    const rows = warmup ? Math.min(params.rows, 10_000) : params.rows;
    const naiveRows = warmup ? Math.min(params.naiveRows, 300) : params.naiveRows;
    return withDatabase(
      databases,
      `migrate_${run}`,
      async (services) => {
        await seedBacklog(services.pool, rows + naiveRows);
        const jobs = await sameJobs(services.pool, rows);
        // Even runs: migrate, naive, raw insert; odd runs the other way round.
        const steps = [() => batched(services, rows), () => naive(services, naiveRows), () => rawInsert(services, jobs)];
        const [ours, reference, insertRate] = run % 2 ? (await inOrder(steps.toReversed())).toReversed() : await inOrder(steps);
        return {
          'migrate-vs-naive': { ours, reference, detail: { rows, naiveRows } },
          'migrate-vs-insert': { ours, reference: insertRate, detail: { rows } },
        };
      },
      { registryModule: null },
    );
  },
};
