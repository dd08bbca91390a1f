// migrate on a legacy backlog, side by side in one database with two references: a naive
// per-row script (find one row, send it, flip it: what a hand-written migration does) and a raw
// boss.insert of the same jobs (same payloads, priorities and retry budgets, new ids), in chunks
// of 1,000, 2 at once like migrate: pg-boss's own insert with nothing around it. A third, the
// floor of the writes migrate must do (per batch, in one transaction, pg-boss's insert of the
// jobs and one plain UPDATE of their rows), moves the same backlog in a database of its own:
// in the shared one its rows would lengthen every batch's scan of the backlog for whichever of
// migrate and the floor went first.
import { randomUUID } from 'node:crypto';
import pLimit from 'p-limit';
import { migrateBacklog } from '../../../dist/moves/migrate.js';
import { floorBatch, inOrder, log, seconds, withDatabase } from '../lib.mjs';

const TYPE = 'evaluation.process';
/** migrate's batches in this benchmark: 1,000 rows, 2 at once. */
const BATCH = 1000;
const AT_ONCE = 2;

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
  const summary = await migrateBacklog({ ...services, log, actor: 'bench', batchSize: BATCH, concurrency: AT_ONCE, limit: rows });
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

/**
 * The rows' side of the floor: the columns migrate's flip writes (engine, routeReason,
 * pgbossJobId, updatedAt), no more and no fewer, so the same tuples, columns and indexes are
 * written; status stays as it is, as migrate leaves it.
 */
const FLIP = `UPDATE "Job" AS j SET engine = 'PGBOSS', "routeReason" = 'migrated', "pgbossJobId" = t.id, "updatedAt" = now()
  FROM unnest($1::uuid[]) AS t(id) WHERE j.id = t.id`;

/**
 * The floor of migrate's writes on `rows` backlog rows, read (in migrate's order) before anything
 * is timed: per batch, in one transaction, pg-boss's insert of the batch's jobs (the rows' ids,
 * payloads, priorities and retry budgets; through `{ db }` on the transaction, as migrate passes
 * it) and one UPDATE of their rows.
 */
export async function floorMove({ pool, boss }, rows) {
  const { rows: backlog } = await pool.query(
    `SELECT id, payload, priority, "maxAttempts" FROM "Job" WHERE status = 'PENDING' AND engine = 'LEGACY' ORDER BY priority DESC, "createdAt" LIMIT $1`,
    [rows],
  );
  if (backlog.length !== rows) throw new Error(`the floor found ${backlog.length} of ${rows} backlog rows`);
  const chunks = Array.from({ length: Math.ceil(rows / BATCH) }, (_, i) => backlog.slice(i * BATCH, (i + 1) * BATCH));
  const batches = chunks.map((chunk) => ({
    jobs: chunk.map((row) => ({ id: row.id, data: row.payload, priority: row.priority, retryLimit: row.maxAttempts - 1 })),
    ids: chunk.map((row) => row.id),
  }));
  const move = ({ jobs, ids }) => floorBatch({ pool, boss }, TYPE, jobs, FLIP, [ids]);
  const limit = pLimit(AT_ONCE);
  const start = performance.now();
  await Promise.all(batches.map((batch) => limit(() => move(batch))));
  return rows / seconds(start);
}

/** The floor in a fresh database seeded as migrate's is. */
function floorInOwnDatabase(databases, run, rows, naiveRows) {
  return withDatabase(
    databases,
    `migrate_floor_${run}`,
    async (services) => {
      await seedBacklog(services.pool, rows + naiveRows);
      return floorMove(services, rows);
    },
    { registryModule: null },
  );
}

export default {
  name: 'migrate',
  rows: [
    { id: 'migrate-vs-naive', name: 'migrate backlog vs naive per-row script', unit: 'rows/s', goal: { ratio: ['>=', 50], text: '≥ 50×' } },
    { id: 'migrate-vs-insert', name: 'migrate backlog vs raw boss.insert of the same jobs', unit: 'rows/s', goal: { ratio: ['>=', 0.6], text: '≥ 0.6×' } },
    {
      id: 'migrate-vs-floor',
      name: 'migrate backlog vs the floor of its writes (boss.insert + plain UPDATE of the rows, one transaction a batch)',
      unit: 'rows/s',
      goal: { ratio: ['>=', 0.85], text: '≥ 0.85×' },
    },
  ],
  params: { small: { rows: 10_000, naiveRows: 300 }, full: { rows: 100_000, naiveRows: 3000 } },
  async once({ databases, params, run, warmup }) {
    const rows = warmup ? Math.min(params.rows, 10_000) : params.rows;
    const naiveRows = warmup ? Math.min(params.naiveRows, 300) : params.naiveRows;
    // The floor before the shared database on odd runs, after it on even ones.
    const floor = () => floorInOwnDatabase(databases, run, rows, naiveRows);
    const floorFirst = run % 2 ? await floor() : undefined;
    const shared = await withDatabase(
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
    const floorRate = floorFirst ?? (await floor());
    return { ...shared, 'migrate-vs-floor': { ours: shared['migrate-vs-insert'].ours, reference: floorRate, detail: { rows } } };
  },
};
