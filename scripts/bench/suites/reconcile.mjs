// reconcile on N finished jobs (N mirror rows + N pg-boss jobs: the steady state it scans) vs
// one plain count(*) hash join of the two tables on the same database: the least any
// comparison of the two tables costs. The tables are seeded once; each run times both.
import { reconcile } from '../../../dist/reconcile/reconcile.js';
import { log, openDatabase, seconds, sideBySide } from '../lib.mjs';

const TYPE = 'evaluation.process';

async function seed({ pool }, rows) {
  // As pg-boss's insert writes them (its queue's policy columns), then finished; set-based,
  // since a million sends would only time the seeding. Latencies spread over 0.05-100 s in
  // distinct milliseconds, so the percentiles reconcile reports cost what they do on real work.
  await pool.query(
    `INSERT INTO pgboss.job (id, name, data, state, created_on, start_after, started_on, completed_on, expire_seconds, deletion_seconds, keep_until,
                             retry_limit, retry_delay, retry_backoff, retry_delay_max, policy, dead_letter, heartbeat_seconds)
     SELECT gen_random_uuid(), q.name, jsonb_build_object('documentId', 'd' || i, 'agentId', 'a'), 'completed',
            t.at - t.took, t.at - t.took, t.at - t.took / 2, t.at, q.expire_seconds, q.deletion_seconds,
            t.at + q.retention_seconds * interval '1 second', q.retry_limit, q.retry_delay, q.retry_backoff, q.retry_delay_max, q.policy,
            q.dead_letter, q.heartbeat_seconds
       FROM pgboss.queue q, generate_series(1, $2) AS i,
            LATERAL (SELECT now() - make_interval(secs => i % 3600) AS at, make_interval(secs => 0.05 + (i::bigint * 7919 % 100000) / 1000.0) AS took) t
      WHERE q.name = $1`,
    [TYPE, rows],
  );
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

export default {
  name: 'reconcile',
  rows: [{ id: 'reconcile-vs-join', name: 'reconcile vs one hash-join count', unit: 's', goal: { ratio: ['<=', 2], text: '≤ 2×' } }],
  params: { small: { rows: 100_000 }, full: { rows: 1_000_000 } },
  async setup({ databases, params }) {
    const services = await openDatabase(databases, 'reconcile', { registryModule: null });
    try {
      await seed(services, params.rows);
    } catch (error) {
      await services.close();
      throw error;
    }
    return services;
  },
  teardown: (services) => services?.close(),
  async once({ state: services, params, run }) {
    const { pool, registry } = services;
    const join = async () => {
      const start = performance.now();
      const { rows } = await pool.query(`SELECT count(*) AS n FROM "Job" j JOIN pgboss.job b ON b.name = j.type AND b.id = j."pgbossJobId"`);
      if (Number(rows[0].n) !== params.rows) throw new Error(`the join counted ${rows[0].n} of ${params.rows}`);
      return seconds(start);
    };
    const full = async () => {
      const start = performance.now();
      const report = await reconcile({ pool, registry, log, actor: 'bench', types: [TYPE], graceSeconds: 0, sinceSeconds: 7 * 86_400 });
      if (report.total !== 0) throw new Error(`reconcile found ${report.total} findings on a clean table`);
      return seconds(start);
    };
    const { ours, reference } = await sideBySide(run, full, join);
    return { 'reconcile-vs-join': { ours, reference, detail: { rows: params.rows } } };
  },
};
