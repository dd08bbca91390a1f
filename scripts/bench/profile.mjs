// Where the time goes, ours against the reference on the same work: statements sent per job (by
// kind), and CPU per job in this Node process and in the Postgres server.
//   node scripts/bench/profile.mjs [--what engine|enqueue|enqueue-many|migrate] [--concurrency 16] [--jobs 10000]
// engine: BossWorker vs bare boss.work; enqueue: RolloutManager.enqueue vs boss.send;
// enqueue-many: enqueueMany vs boss.insert, batches of 1,000; migrate: migrateBacklog vs a raw
// boss.insert of the same jobs (chunks of 1,000, 2 at once).
// Add --cpu-prof (node's flag, before the script) for a profile of the Node side. On a server
// with pg_stat_statements preloaded (BENCH_DATABASE_URL), it also lists each statement's
// execution time, buffers and WAL per job.
import { readdir, readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Databases, NOOP, rolloutManager, withDatabase, withServer } from './lib.mjs';
import { bareRate, engineRate } from './suites/engine.mjs';
import { floorInput, floorWrite } from './suites/enqueue.mjs';
import { batched, floorMove, rawInsert, sameJobs, seedBacklog } from './suites/migrate.mjs';

const { values } = parseArgs({ options: { what: { type: 'string', default: 'engine' }, concurrency: { type: 'string', default: '16' }, jobs: { type: 'string', default: '10000' } } });
const concurrency = Number(values.concurrency);
const jobs = Number(values.jobs);

// Every statement any pool or client sends, by its first words.
const counts = new Map();
let counting = false;
const query = pg.Client.prototype.query;
pg.Client.prototype.query = function (config, ...rest) {
  if (counting) {
    const text = typeof config === 'string' ? config : config?.text ?? '';
    const kind = text.replace(/\s+/g, ' ').trim().slice(0, 60);
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return query.call(this, config, ...rest);
};

/** CPU seconds of each postgres process (the server and its backends), by pid. */
async function postgresCpu() {
  const ticks = 100;
  const byPid = new Map();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    if (!stat.includes('(postgres)')) continue;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    byPid.set(entry, (Number(fields[11]) + Number(fields[12])) / ticks);
  }
  return byPid;
}

/** CPU used since `before` by the postgres processes still alive (a backend that ended meanwhile is not counted). */
async function postgresCpuSince(before) {
  let total = 0;
  for (const [pid, seconds] of await postgresCpu()) total += seconds - (before.get(pid) ?? 0);
  return total;
}

/** pg_stat_statements of this database, if the server has it loaded; reset before a measure. */
async function statements(pool, action) {
  try {
    if (action === 'reset') {
      await pool.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
      await pool.query('SELECT pg_stat_statements_reset()');
      return [];
    }
    const { rows } = await pool.query(
      `SELECT calls, total_exec_time AS ms, rows, shared_blks_hit + shared_blks_read AS blocks, shared_blks_dirtied AS dirtied, wal_bytes::float8 AS wal, left(regexp_replace(query, '\\s+', ' ', 'g'), 70) AS query
         FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
        ORDER BY total_exec_time DESC LIMIT 12`,
    );
    return rows;
  } catch {
    return [];
  }
}

async function measure(name, pool, run) {
  await statements(pool, 'reset');
  counts.clear();
  const node = process.cpuUsage();
  const postgres = await postgresCpu();
  counting = true;
  const { rate } = await run();
  counting = false;
  const nodeCpu = process.cpuUsage(node);
  const pgCpu = await postgresCpuSince(postgres);
  const sent = [...counts].sort((a, b) => b[1] - a[1]);
  const total = sent.reduce((sum, [, n]) => sum + n, 0);
  process.stdout.write(
    `\n${name}: ${Math.round(rate)} jobs/s; per job: ${(total / jobs).toFixed(2)} statements, ` +
      `Node CPU ${(((nodeCpu.user + nodeCpu.system) / 1000 / jobs) * 1000).toFixed(0)} µs, Postgres CPU ${((pgCpu / jobs) * 1e6).toFixed(0)} µs (10 ms ticks; the wait loop's queries included)\n` +
      sent.slice(0, 12).map(([kind, n]) => `  ${(n / jobs).toFixed(3)}/job  ${kind}`).join('\n') + '\n',
  );
  const executed = await statements(pool);
  if (executed.length) {
    process.stdout.write(
      '  pg_stat_statements, per job: execution µs, buffers touched, buffers dirtied, WAL bytes\n' +
        executed
          .map((row) => `  ${((row.ms * 1000) / jobs).toFixed(1).padStart(6)} µs ${(row.blocks / jobs).toFixed(1).padStart(5)} ${(row.dirtied / jobs).toFixed(2).padStart(5)} ${Math.round(row.wal / jobs).toString().padStart(5)} B  (${row.calls} calls, ${((row.ms * 1000) / row.calls).toFixed(0)} µs each) ${row.query}`)
          .join('\n') +
        '\n',
    );
  }
}

/** Times `jobs` jobs written by `write(n)` (one job, or a batch of `per` jobs), as a rate. */
async function writeRate(write, per = 1) {
  const start = performance.now();
  for (let n = 0; n < jobs; n += per) await write(n);
  return { rate: jobs / ((performance.now() - start) / 1000) };
}

async function enqueue(services, many) {
  const { manager, flags } = await rolloutManager(services, 100);
  const batch = (n) => Array.from({ length: 1000 }, (_, i) => ({ n: n + i }));
  try {
    await writeRate((n) => manager.enqueue(NOOP, { n })); // warm-up
    await measure(many ? 'RolloutManager.enqueueMany, batches of 1000' : 'RolloutManager.enqueue', services.pool, () =>
      many ? writeRate((n) => manager.enqueueMany(NOOP, batch(n).map((payload) => ({ payload }))), 1000) : writeRate((n) => manager.enqueue(NOOP, { n })),
    );
    await measure(many ? 'boss.insert, batches of 1000' : 'boss.send', services.pool, () =>
      many ? writeRate((n) => services.boss.insert(NOOP, batch(n).map((data) => ({ data }))), 1000) : writeRate((n) => services.boss.send(NOOP, { n })),
    );
    if (many) await measure('the floor: boss.insert + plain INSERT of the rows, one transaction, batches of 1000', services.pool, () => writeRate((n) => floorWrite(services, floorInput(batch(n))), 1000));
  } finally {
    await flags.close();
  }
}

await withServer(async (adminUrl) => {
  const databases = new Databases(adminUrl);
  try {
    if (values.what === 'engine') {
      await withDatabase(databases, 'profile_warmup', (services) => engineRate(services, concurrency, 2000));
      await withDatabase(databases, 'profile_engine', (services) => measure(`engine, concurrency ${concurrency}`, services.pool, () => engineRate(services, concurrency, jobs)));
      await withDatabase(databases, 'profile_bare', (services) => measure(`bare boss.work, batch ${concurrency}`, services.pool, () => bareRate(services, concurrency, jobs)));
    } else if (values.what === 'enqueue' || values.what === 'enqueue-many') {
      await withDatabase(databases, 'profile_enqueue', (services) => enqueue(services, values.what === 'enqueue-many'));
    } else if (values.what === 'migrate') {
      await withDatabase(
        databases,
        'profile_migrate',
        async (services) => {
          await seedBacklog(services.pool, jobs * 2);
          const same = await sameJobs(services.pool, jobs);
          await measure('migrate, batches of 1000, 2 at once', services.pool, async () => ({ rate: await batched(services, jobs) }));
          await measure('raw boss.insert of the same jobs, chunks of 1000, 2 at once', services.pool, async () => ({ rate: await rawInsert(services, same) }));
        },
        { registryModule: null },
      );
      // The floor moves the same backlog in a database of its own, as in the benchmark.
      await withDatabase(
        databases,
        'profile_migrate_floor',
        async (services) => {
          await seedBacklog(services.pool, jobs * 2);
          await measure('the floor: boss.insert + plain UPDATE of the rows, one transaction a batch, 2 at once', services.pool, async () => ({ rate: await floorMove(services, jobs) }));
        },
        { registryModule: null },
      );
    } else {
      throw new Error(`--what must be engine, enqueue, enqueue-many or migrate, got '${values.what}'`);
    }
  } finally {
    await databases.close();
  }
});
