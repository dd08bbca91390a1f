// Shared by the benchmarks: a Postgres server (BENCH_DATABASE_URL, or an embedded one in a
// temp dir), a fresh migrated database per run (copied from one migrated template), producers,
// waits, and the resident memory of a process tree.
import { randomBytes } from 'node:crypto';
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../dist/db/embedded.js';
import { migrate } from '../../dist/db/migrate.js';
import { createPool } from '../../dist/db/pool.js';
import { loadRegistry } from '../../dist/jobs/registry.js';
import { createLogger } from '../../dist/support/log.js';
import { startBoss } from '../../dist/pgboss/boss.js';
import { ensureQueues } from '../../dist/pgboss/queues.js';
import { changeFlag, FlagCache } from '../../dist/state/flags.js';
import { RolloutManager } from '../../dist/rollout/manager.js';

export const log = createLogger({ level: 'warn', name: 'bench' });

/** The benchmark's own job types (bench.noop, bench.sleep). */
export const BENCH_REGISTRY = fileURLToPath(new URL('./registry.mjs', import.meta.url));
export const NOOP = 'bench.noop';

export const seconds = (start) => (performance.now() - start) / 1000;

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Stops the embedded server, if this process started one (also on SIGINT, see stopWorkersOnSignal). */
let serverStop;

/** A Postgres server for the whole run: BENCH_DATABASE_URL, else an embedded one removed afterwards. */
export async function withServer(run) {
  if (process.env.BENCH_DATABASE_URL) return run(process.env.BENCH_DATABASE_URL);
  const dataDir = await mkdtemp(join(tmpdir(), 'cutover-bench-'));
  await chmod(dataDir, 0o755); // as root the server runs as `postgres`, which must enter it
  const server = await startEmbeddedPostgres({ dataDir, log });
  serverStop = async () => {
    await server.stop();
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    return await run(server.url);
  } finally {
    await serverStop();
  }
}

export async function withClient(url, run) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

function databaseUrl(adminUrl, name) {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * Databases on one server, each a copy of one template with every cutover migration and the
 * pg-boss schema applied (a copy takes a fraction of a migration run). Names carry this run's
 * tag, so two runs on one server never meet.
 */
export class Databases {
  constructor(adminUrl) {
    this.adminUrl = adminUrl;
    this.tag = randomBytes(4).toString('hex');
    this.template = undefined;
  }

  async prepareTemplate() {
    if (this.template) return this.template;
    const name = `bench_${this.tag}_template`;
    await withClient(this.adminUrl, (client) => client.query(`CREATE DATABASE ${name}`));
    const url = databaseUrl(this.adminUrl, name);
    await migrate({ databaseUrl: url });
    const boss = await startBoss({ databaseUrl: url, log, max: 2 });
    await boss.stop({ graceful: false, close: true });
    await withClient(this.adminUrl, (client) => client.query(`ALTER DATABASE ${name} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`));
    this.template = name;
    return name;
  }

  /** A fresh database; `drop()` removes it. */
  async create(label) {
    const template = await this.prepareTemplate();
    const name = `bench_${this.tag}_${label.replace(/[^a-z0-9_]/gi, '_').toLowerCase()}`.slice(0, 63);
    await withClient(this.adminUrl, async (client) => {
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.query(`CREATE DATABASE ${name} TEMPLATE ${template}`);
    });
    return { name, url: databaseUrl(this.adminUrl, name), drop: () => withClient(this.adminUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)) };
  }

  async close() {
    if (!this.template) return;
    await withClient(this.adminUrl, async (client) => {
      await client.query(`ALTER DATABASE ${this.template} WITH IS_TEMPLATE false`);
      await client.query(`DROP DATABASE IF EXISTS ${this.template} WITH (FORCE)`);
    });
  }
}

/**
 * A fresh database with a pool, a pg-boss client and a registry whose queues exist: the
 * benchmark's own types by default, cutover's demo registry with `registryModule: null`.
 * `close()` stops them and drops the database.
 */
export async function openDatabase(databases, label, { registryModule = BENCH_REGISTRY } = {}) {
  const database = await databases.create(label);
  const pool = createPool(database.url, { max: 6 });
  const boss = await startBoss({ databaseUrl: database.url, log, max: 6 });
  const close = async () => {
    await boss.stop({ graceful: false, close: true });
    await pool.end();
    await database.drop();
  };
  try {
    const registry = await loadRegistry(registryModule ?? undefined);
    await ensureQueues(boss, registry, log);
    return { databaseUrl: database.url, pool, boss, registry, close };
  } catch (error) {
    await close();
    throw error;
  }
}

export async function withDatabase(databases, label, run, options) {
  const services = await openDatabase(databases, label, options);
  try {
    return await run(services);
  } finally {
    await services.close();
  }
}

/** A RolloutManager that routes `percent` of new jobs to pg-boss. Close `flags` when done. */
export async function rolloutManager({ pool, boss, registry, databaseUrl }, percent) {
  await changeFlag(pool, { jobType: '*', basisPoints: percent * 100 }, { actor: 'bench', action: 'flag.set' });
  const flags = new FlagCache({ pool, databaseUrl, log });
  return { manager: new RolloutManager({ pool, boss, registry, flags, log }), flags };
}

/** `count` jobs with their rows, written as producers write them (enqueueMany, 1,000 at a time). */
export async function produce(services, { type = NOOP, count, percent = 100, payload = (n) => ({ n }) }) {
  const { manager, flags } = await rolloutManager(services, percent);
  try {
    for (let n = 0; n < count; n += 1000) {
      await manager.enqueueMany(type, Array.from({ length: Math.min(1000, count - n) }, (_, i) => ({ payload: payload(n + i) })));
    }
  } finally {
    await flags.close();
  }
}

/** Polls `sql` (one row with a column `n`) until n ≥ expected; throws after `timeoutMs`. */
export async function until(pool, sql, expected, { everyMs = 10, timeoutMs = 600_000, values = [] } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await pool.query(sql, values);
    if (Number(rows[0].n) >= expected) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${expected}: ${sql} (at ${rows[0].n})`);
    await sleep(everyMs);
  }
}

/** The database's clock, which also stamps the jobs' completions. */
export async function databaseNow(pool) {
  const { rows } = await pool.query('SELECT clock_timestamp() AS now');
  return rows[0].now;
}

/**
 * Drains are timed on the database's clock, from `since` to the last completion the database
 * recorded, so how often the wait polls (cheaply, every 100 ms) changes nothing it measures.
 */
const COMPLETED_JOBS = `SELECT count(*) AS n, max(completed_on) AS last FROM pgboss.job WHERE name = $1 AND state = 'completed'`;
const COMPLETED_ROWS = `SELECT count(*) AS n, max("completedAt") AS last FROM "Job" WHERE type = $1 AND status = 'COMPLETED'`;

/** Completed jobs of a type so far, in pg-boss (or with `rows`, in the Job table): { n, last }. */
export async function completedJobs(pool, name, rows = false) {
  const { rows: found } = await pool.query(rows ? COMPLETED_ROWS : COMPLETED_JOBS, [name]);
  return { n: Number(found[0].n), last: found[0].last };
}

/** Jobs per second from `since` until `expected` jobs of the type are completed. */
export async function drainRate(pool, name, { since, before, jobs, rows = false }) {
  const deadline = Date.now() + 600_000;
  for (;;) {
    const done = await completedJobs(pool, name, rows);
    if (done.n >= before + jobs) return jobs / ((done.last.getTime() - since.getTime()) / 1000);
    if (Date.now() > deadline) throw new Error(`timed out draining ${name}: ${done.n - before} of ${jobs}`);
    await sleep(100);
  }
}

/** Bytes of WAL written between two calls, from pg_current_wal_lsn (cluster-wide). */
export async function walPosition(pool) {
  const { rows } = await pool.query('SELECT pg_current_wal_lsn()::text AS lsn');
  return rows[0].lsn;
}

export async function walBytesSince(pool, lsn) {
  const { rows } = await pool.query('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::float8 AS bytes', [lsn]);
  return rows[0].bytes;
}

/** Resident memory (bytes) of a process and all its descendants, from /proc. */
export async function treeRss(rootPid) {
  const entries = await readdir('/proc').catch(() => []);
  const parents = new Map();
  const rss = new Map();
  await Promise.all(
    entries
      .filter((entry) => /^\d+$/.test(entry))
      .map(async (entry) => {
        const pid = Number(entry);
        const [stat, status] = await Promise.all([readFile(`/proc/${pid}/stat`, 'utf8').catch(() => ''), readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')]);
        if (!stat || !status) return;
        // The command name (field 2) is in parentheses and may contain spaces: read after it.
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        const kib = Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0);
        parents.set(pid, ppid);
        rss.set(pid, kib * 1024);
      }),
  );
  const tree = new Set([rootPid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [pid, ppid] of parents) {
      if (!tree.has(pid) && tree.has(ppid)) {
        tree.add(pid);
        grew = true;
      }
    }
  }
  let total = 0;
  for (const pid of tree) total += rss.get(pid) ?? 0;
  return { bytes: total, processes: [...tree].filter((pid) => rss.has(pid)).length };
}

const WORKER_PROCESS = fileURLToPath(new URL('./worker-process.mjs', import.meta.url));
const liveWorkers = new Set();

/** For the entry point: a benchmark stopped from outside takes its worker processes with it. */
export function stopWorkersOnSignal() {
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, async () => {
      for (const child of liveWorkers) child.kill('SIGKILL');
      await serverStop?.().catch(() => undefined);
      process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
    });
  }
}

/** Starts worker-process.mjs and resolves once it takes jobs; `stop()` ends it gracefully. */
export async function startWorkerProcess({ engine, databaseUrl, concurrency, types }) {
  const { spawn } = await import('node:child_process');
  const args = [WORKER_PROCESS, '--engine', engine, '--database-url', databaseUrl, '--concurrency', String(concurrency), ...(types ? ['--types', types.join(',')] : [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  liveWorkers.add(child);
  const exited = new Promise((resolve) => child.once('exit', resolve)).finally(() => liveWorkers.delete(child));
  let buffered = '';
  const lines = [];
  let notify;
  child.stdout.on('data', (chunk) => {
    buffered += chunk.toString();
    for (let at = buffered.indexOf('\n'); at >= 0; at = buffered.indexOf('\n')) {
      lines.push(JSON.parse(buffered.slice(0, at)));
      buffered = buffered.slice(at + 1);
      notify?.();
    }
  });
  const next = async (predicate) => {
    for (;;) {
      const found = lines.find(predicate);
      if (found) return found;
      const arrived = new Promise((resolve) => (notify = resolve));
      if ((await Promise.race([arrived, exited.then(() => 'exited')])) === 'exited' && !lines.find(predicate)) {
        throw new Error(`worker process (${engine}) exited before saying so`);
      }
    }
  };
  await next((line) => line.ready);
  return {
    pid: child.pid,
    async stop() {
      child.kill('SIGTERM');
      const stopped = await next((line) => line.stopped);
      await exited;
      return stopped.stats;
    },
  };
}

/**
 * Both sides of a row in one run, one after the other; odd runs take the reference first, so
 * neither side always meets the other's leftovers (dead tuples, a warm cache).
 */
export async function sideBySide(run, ours, reference) {
  if (run % 2) {
    const referenceResult = await reference();
    return { ours: await ours(), reference: referenceResult };
  }
  const oursResult = await ours();
  return { ours: oursResult, reference: await reference() };
}

/** Runs steps one after the other; their results in the same order. */
export async function inOrder(steps) {
  const results = [];
  for (const step of steps) results.push(await step());
  return results;
}

/**
 * One batch of a floor row (the writes a cutover path must do, with nothing around them): in
 * one transaction on one client, pg-boss's insert of `jobs` into queue `name` through `{ db }`
 * on that transaction (as cutover passes it), then `sql` with `values` for the tracking rows.
 */
export async function floorBatch({ pool, boss }, name, jobs, sql, values) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await boss.insert(name, jobs, { db: { executeSql: (text, params) => client.query(text, params) } });
    await client.query(sql, values);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}
