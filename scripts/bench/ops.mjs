// Operator-command benchmarks, each side by side with its reference in the same run:
//   1. migrate (batched, one transaction per batch) vs a naive per-row script (find, send, update)
//   2. reconcile on 1M Job rows + 1M pg-boss jobs vs one plain count(*) hash join of the two tables
import { migrateBacklog } from '../../dist/ops/migrate.js';
import { reconcile } from '../../dist/ops/reconcile.js';
import { log, report, round, seconds, withDatabase, withServer } from './lib.mjs';

const MIGRATE_ROWS = Number(process.env.BENCH_MIGRATE_ROWS ?? 100_000);
const NAIVE_ROWS = Number(process.env.BENCH_NAIVE_ROWS ?? 5_000);
const RECONCILE_ROWS = Number(process.env.BENCH_RECONCILE_ROWS ?? 1_000_000);
const TYPE = 'evaluation.process';

async function seedBacklog(pool, rows) {
  await pool.query(
    `INSERT INTO "Job" (id, type, payload, "maxAttempts", "createdAt", "updatedAt")
     SELECT gen_random_uuid(), $1, jsonb_build_object('documentId', 'doc-' || i, 'agentId', 'agent-' || (i % 9)), 3,
            (now() AT TIME ZONE 'UTC') - make_interval(secs => i % 3600), now() AT TIME ZONE 'UTC'
       FROM generate_series(1, $2) AS i`,
    [TYPE, rows],
  );
  await pool.query('VACUUM ANALYZE "Job"');
}

async function benchMigrate(adminUrl) {
  const batched = await withDatabase(adminUrl, 'bench_migrate', async ({ databaseUrl, pool, boss, registry }) => {
    await seedBacklog(pool, MIGRATE_ROWS);
    const start = performance.now();
    const summary = await migrateBacklog({ pool, databaseUrl, boss, registry, log, actor: 'bench', batchSize: 1000, concurrency: 2 });
    if (summary.moved !== MIGRATE_ROWS) throw new Error(`migrate moved ${summary.moved} of ${MIGRATE_ROWS}`);
    return MIGRATE_ROWS / seconds(start);
  });
  // What a hand-written migration script does: one row at a time, send, then update.
  const naive = await withDatabase(adminUrl, 'bench_naive', async ({ pool, boss }) => {
    await seedBacklog(pool, NAIVE_ROWS);
    const start = performance.now();
    for (;;) {
      const { rows } = await pool.query(`SELECT id, type, payload FROM "Job" WHERE status = 'PENDING' AND engine = 'LEGACY' LIMIT 1`);
      const row = rows[0];
      if (!row) break;
      await boss.send(row.type, row.payload, { id: row.id });
      await pool.query(`UPDATE "Job" SET engine = 'PGBOSS', "pgbossJobId" = id WHERE id = $1`, [row.id]);
    }
    return NAIVE_ROWS / seconds(start);
  });
  return { batched, naive };
}

/** 1M finished jobs on pg-boss with their mirror rows: the steady state reconcile scans. */
async function seedReconcile(pool, boss, rows) {
  const chunk = 10_000;
  for (let done = 0; done < rows; done += chunk) {
    const jobs = Array.from({ length: Math.min(chunk, rows - done) }, (_, i) => ({ data: { documentId: `d${done + i}`, agentId: 'a' } }));
    await boss.insert(TYPE, jobs);
  }
  await pool.query(`UPDATE pgboss.job SET state = 'completed', started_on = created_on, completed_on = created_on + interval '1 second' WHERE name = $1`, [TYPE]);
  await pool.query(
    `INSERT INTO "Job" (id, type, payload, status, attempts, "maxAttempts", engine, "pgbossJobId", "routeReason", "createdAt", "updatedAt", "startedAt", "completedAt")
     SELECT id, name, data, 'COMPLETED', 1, 3, 'PGBOSS', id, 'bucket', created_on AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC',
            started_on AT TIME ZONE 'UTC', completed_on AT TIME ZONE 'UTC'
       FROM pgboss.job WHERE name = $1`,
    [TYPE],
  );
  await pool.query('VACUUM ANALYZE "Job"');
  await pool.query('VACUUM ANALYZE pgboss.job');
}

async function benchReconcile(adminUrl) {
  return withDatabase(adminUrl, 'bench_reconcile', async ({ pool, boss, registry }) => {
    await seedReconcile(pool, boss, RECONCILE_ROWS);
    // Warm both the same way, then measure each once, alternating, and keep the best of two.
    const join = async () => {
      const start = performance.now();
      const { rows } = await pool.query(`SELECT count(*) AS n FROM "Job" j JOIN pgboss.job b ON b.name = j.type AND b.id = j."pgbossJobId"`);
      if (Number(rows[0].n) !== RECONCILE_ROWS) throw new Error(`join counted ${rows[0].n}`);
      return seconds(start);
    };
    const full = async () => {
      const start = performance.now();
      const report = await reconcile({ pool, registry, log, actor: 'bench', types: [TYPE], graceSeconds: 0, sinceSeconds: 7 * 86_400 });
      if (report.total !== 0) throw new Error(`reconcile found ${report.total} findings on a clean table`);
      return seconds(start);
    };
    await join();
    const joinTimes = [];
    const reconcileTimes = [];
    for (let i = 0; i < 2; i++) {
      joinTimes.push(await join());
      reconcileTimes.push(await full());
    }
    return { join: Math.min(...joinTimes), reconcile: Math.min(...reconcileTimes) };
  });
}

await withServer(async (adminUrl) => {
  const migrateResult = await benchMigrate(adminUrl);
  const reconcileResult = await benchReconcile(adminUrl);
  const results = [
    { name: `migrate ${MIGRATE_ROWS} rows (batch 1000, 2 at once)`, measured: `${round(migrateResult.batched)} rows/s`, reference: `naive per-row ${round(migrateResult.naive)} rows/s (${NAIVE_ROWS} rows)`, ratio: round(migrateResult.batched / migrateResult.naive), goal: 'higher is better' },
    { name: `reconcile ${RECONCILE_ROWS} rows + pg-boss jobs`, measured: `${round(reconcileResult.reconcile)} s`, reference: `count(*) hash join ${round(reconcileResult.join)} s`, ratio: round(reconcileResult.reconcile / reconcileResult.join), goal: 'within 3x' },
  ];
  await report('ops.json', results);
});
