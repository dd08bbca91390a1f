// Scale on paper (docs/scale.md), run only when named:
//   workers-scaling: the pg-boss engine in 1, 2 and 4 worker processes (concurrency 16 each)
//     draining one backlog, against bare pg-boss in as many processes; connections and WAL.
//   db-size: the engine's throughput and enqueue's cost on tables already holding a large
//     history of finished jobs, against the same on empty tables.
import { clientTx } from '../../../dist/db/sql.js';
import { completedJobs, drainRate, log, NOOP, openDatabase, rolloutManager, seconds, sideBySide, startWorkerProcess, walBytesSince, walPosition, withDatabase } from '../lib.mjs';
import { engineRate } from './engine.mjs';

const CONCURRENCY = 16;

/**
 * `count` jobs committed in one transaction, so every worker sees the whole backlog at once;
 * returns the database's clock just before the commit.
 */
async function produceAtOnce(services, count) {
  const { manager, flags } = await rolloutManager(services, 100);
  const client = await services.pool.connect();
  try {
    await client.query('BEGIN');
    for (let n = 0; n < count; n += 1000) {
      const items = Array.from({ length: Math.min(1000, count - n) }, (_, i) => ({ payload: { n: n + i } }));
      await manager.enqueueMany(NOOP, items, { tx: clientTx(client) });
    }
    const { rows } = await client.query('SELECT clock_timestamp() AS now');
    await client.query('COMMIT');
    return rows[0].now;
  } finally {
    client.release();
    await flags.close();
  }
}

/** Connections the worker processes hold (their pools, pg-boss's, its LISTEN), at the most. */
const WORKER_CONNECTIONS = `SELECT count(*)::int AS n FROM pg_stat_activity
  WHERE datname = current_database() AND (application_name LIKE 'bench-%-worker' OR application_name = 'cutover-pgboss-worker')`;

async function drain(services, engine, processes, jobs) {
  const { pool, databaseUrl } = services;
  const workers = [];
  let connections = 0;
  const sampler = setInterval(async () => {
    const { rows } = await pool.query(WORKER_CONNECTIONS).catch(() => ({ rows: [{ n: 0 }] }));
    connections = Math.max(connections, rows[0].n);
  }, 250);
  try {
    for (let i = 0; i < processes; i++) workers.push(await startWorkerProcess({ engine, databaseUrl, concurrency: CONCURRENCY, types: [NOOP] }));
    const { n: before } = await completedJobs(pool, NOOP);
    const lsn = await walPosition(pool);
    const since = await produceAtOnce(services, jobs);
    const enqueued = await walBytesSince(pool, lsn);
    const rate = await drainRate(pool, NOOP, { since, before, jobs });
    // WAL of the drain alone: what the producers wrote is taken off.
    return { rate, walBytesPerJob: ((await walBytesSince(pool, lsn)) - enqueued) / jobs, connectionsPerProcess: connections / processes };
  } finally {
    clearInterval(sampler);
    for (const worker of workers) await worker.stop();
  }
}

const counts = [1, 2, 4];

export const workersScaling = {
  name: 'workers-scaling',
  optIn: true,
  rows: counts.map((processes) => ({
    id: `workers-${processes}`,
    name: `pg-boss engine vs bare pg-boss, ${processes} worker process${processes > 1 ? 'es' : ''} × concurrency ${CONCURRENCY}`,
    unit: 'jobs/s',
  })),
  params: { small: { jobs: 3000 }, full: { jobs: 10_000 } },
  async once({ databases, params, run, warmup }) {
    const jobs = warmup ? Math.ceil(params.jobs / 4) : params.jobs;
    return withDatabase(databases, `workers_${run}`, async (services) => {
      const results = {};
      for (const processes of run % 2 ? counts.toReversed() : counts) {
        const { ours, reference } = await sideBySide(run, () => drain(services, 'pgboss', processes, jobs), () => drain(services, 'bare', processes, jobs));
        results[`workers-${processes}`] = { ours: ours.rate, reference: reference.rate, detail: { ours, reference } };
      }
      return results;
    });
  },
};

/** A history of `rows` finished jobs on both sides, as months of traffic leave it. */
async function seedHistory({ pool }, rows) {
  await pool.query(
    `INSERT INTO pgboss.job (id, name, data, state, created_on, start_after, started_on, completed_on, expire_seconds, deletion_seconds, keep_until,
                             retry_limit, retry_delay, retry_backoff, policy, dead_letter)
     SELECT gen_random_uuid(), q.name, jsonb_build_object('n', i), 'completed', t.at, t.at, t.at, t.at, q.expire_seconds, q.deletion_seconds,
            t.at + q.retention_seconds * interval '1 second', q.retry_limit, q.retry_delay, q.retry_backoff, q.policy, q.dead_letter
       FROM pgboss.queue q, generate_series(1, $2) AS i, LATERAL (SELECT now() - make_interval(secs => i % 86400) AS at) t
      WHERE q.name = $1`,
    [NOOP, rows],
  );
  await pool.query(
    `INSERT INTO "Job" (id, type, payload, status, attempts, "maxAttempts", engine, "pgbossJobId", "routeReason", "createdAt", "updatedAt", "startedAt", "completedAt")
     SELECT id, name, data, 'COMPLETED', 1, 1, 'PGBOSS', id, 'bucket', created_on AT TIME ZONE 'UTC', created_on AT TIME ZONE 'UTC',
            started_on AT TIME ZONE 'UTC', completed_on AT TIME ZONE 'UTC'
       FROM pgboss.job WHERE name = $1`,
    [NOOP],
  );
  await pool.query('VACUUM ANALYZE "Job"');
  await pool.query('VACUUM ANALYZE pgboss.job');
}

async function enqueueCost(services, jobs) {
  const { manager, flags } = await rolloutManager(services, 100);
  try {
    const start = performance.now();
    for (let n = 0; n < jobs; n++) await manager.enqueue(NOOP, { n });
    return (seconds(start) * 1000) / jobs;
  } finally {
    await flags.close();
  }
}

export const dbSize = {
  name: 'db-size',
  optIn: true,
  rows: [
    { id: 'db-size-engine', name: 'pg-boss engine at concurrency 16, tables holding a history vs empty', unit: 'jobs/s' },
    { id: 'db-size-enqueue', name: 'RolloutManager.enqueue, tables holding a history vs empty', unit: 'ms' },
  ],
  params: { small: { history: 200_000, jobs: 2000, enqueues: 300 }, full: { history: 2_000_000, jobs: 10_000, enqueues: 2000 } },
  async setup({ databases, params }) {
    const services = await openDatabase(databases, 'history');
    try {
      await seedHistory(services, params.history);
    } catch (error) {
      await services.close();
      throw error;
    }
    log.info({ rows: params.history }, 'history seeded');
    return services;
  },
  teardown: (services) => services?.close(),
  async once({ databases, state: history, params, run, warmup }) {
    const jobs = warmup ? Math.ceil(params.jobs / 4) : params.jobs;
    return withDatabase(databases, `empty_${run}`, async (empty) => {
      const pair = async (measure) => (run % 2 ? { reference: await measure(empty), ours: await measure(history) } : { ours: await measure(history), reference: await measure(empty) });
      const engine = await pair(async (services) => (await engineRate(services, CONCURRENCY, jobs)).rate);
      const enqueue = await pair((services) => enqueueCost(services, params.enqueues));
      return { 'db-size-engine': { ...engine, detail: { history: params.history } }, 'db-size-enqueue': { ...enqueue, detail: { history: params.history } } };
    });
  },
};
