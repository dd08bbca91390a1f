// npm run chaos [-- --jobs N --seconds S --seed X --drain D --json --keep --plan --pooler]
//
// A fault-injection run that proves no job is lost. On one Postgres (its own embedded server,
// or a fresh database on DATABASE_URL's server), with real processes:
//   - 2 legacy runners and 2 pg-boss workers (`cutover worker`), running scripts/chaos/registry.mjs;
//   - a producer (scripts/chaos/producer.mjs) enqueueing N jobs through the RolloutManager over
//     the first 90 % of the chaos, many inside caller transactions that commit 0.5-2 s late;
// while the harness, on a schedule drawn from --seed before anything runs (see it with --plan),
//   - moves the percentage every 3-7 s (`cutover rollout set`);
//   - runs `cutover migrate` every 6-12 s, and `cutover rollback --yes` a few times (every
//     other one while a slow migrate is in flight, the third one killed mid-way), releasing
//     the kill switch 3-5 s after each rollback (`cutover rollout unkill`);
//   - kill -9s a worker (its process group: a legacy runner's job processes die with it) every
//     6-12 s and restarts it, and kill -9s some migrate and rollback runs;
//   - has the producer enqueue jobs that stall a pg-boss worker past their expiry;
//   - crashes Postgres once (`pg_ctl stop -m immediate`, down 1-3 s, started again), in the
//     middle of a surge of jobs so every process is busy; skipped with DATABASE_URL.
// Then it stops the chaos, releases the kill switch, sets 100 %, migrates what still waits on
// legacy, keeps the workers running until every job is final (--drain seconds at most), runs
// `cutover reconcile --fix` and `cutover reconcile --json`, stops the workers and judges
// (scripts/chaos/verdict.mjs): exit 0 only if no job was lost, every extra execution is
// explained, no chain ran past its attempts, reconcile is clean, and the DESIGN §12 invariants
// held (a success never runs again, retries keep their time, nothing runs on pg-boss under the
// kill switch, rollback is never blocked, no process dies of a Postgres restart); else exit 1.
// With --pooler (or CUTOVER_CHAOS_POOLER=1) every cutover process (workers, producer, operator
// commands, db migrate) connects through a real PgBouncer in transaction mode (scripts/pgbouncer.ts)
// and gets no DIRECT_URL; only the harness's own bookkeeping reads Postgres directly.
// Every process it started is killed at the end, whatever happened, and its temp dirs are
// removed (kept with --keep, for a look at the database and the logs).
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { loadRegistry } from '../../dist/jobs/registry.js';
import { CHAOS_SCHEMA, ChaosPostgres, FLAG_TTL_MS, Processes, ResilientDb, log, prng, registryModule, sleep } from './lib.mjs';
import { computeVerdict } from './verdict.mjs';
import { STALL_MS } from './registry.mjs';
import { startPgBouncer } from '../pgbouncer.ts';

const producerEntry = fileURLToPath(new URL('./producer.mjs', import.meta.url));

const { values: argv } = parseArgs({
  options: {
    jobs: { type: 'string', default: '10000' },
    seconds: { type: 'string' },
    seed: { type: 'string' },
    drain: { type: 'string', default: '90' },
    json: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    plan: { type: 'boolean', default: false },
    pooler: { type: 'boolean', default: process.env.CUTOVER_CHAOS_POOLER === '1' },
  },
});
const JOBS = Number(argv.jobs);
const SECONDS = Number(argv.seconds ?? Math.max(30, Math.round((180 * JOBS) / 10_000)));
const DRAIN_SECONDS = Number(argv.drain);
const SEED = argv.seed !== undefined ? Number(argv.seed) : randomInt(1, 2 ** 31);
for (const [name, value] of [['--jobs', JOBS], ['--seconds', SECONDS], ['--seed', SEED], ['--drain', DRAIN_SECONDS]]) {
  if (!Number.isInteger(value) || value < 1) {
    process.stderr.write(`chaos: ${name} must be a positive integer\n`);
    process.exit(2);
  }
}

const t0 = Date.now();
const say = (line) => process.stderr.write(`[chaos ${((Date.now() - t0) / 1000).toFixed(1).padStart(6)}s] ${line}\n`);
const seconds = (from, to = Date.now()) => Math.round((to - from) / 100) / 10;

/** The chaos schedule, every random choice drawn here from the seed, before anything runs. */
function drawPlan(random, canCrash) {
  const S = SECONDS;
  const events = [];
  for (let t = random.uniform(2, 4); t < S; t += random.uniform(3, 7)) events.push({ t, action: 'percent', percent: random.pick([20, 40, 60, 75, 90, 100]) });
  for (let t = random.uniform(4, 8); t < S - 3; t += random.uniform(6, 12)) {
    events.push({ t, action: 'migrate', batch: random.pick([50, 100, 200, 500]), kill: random.chance(0.35), killAfterMs: Math.round(random.uniform(300, 2000)) });
  }
  const crashAt = random.uniform(S * 0.42, S * 0.55);
  if (canCrash) events.push({ t: crashAt, action: 'crash', downMs: Math.round(random.uniform(1000, 3000)) });
  const rollbacks = Math.max(3, Math.round(S / 30));
  // Within the producer's window (the first 90 %), so late-committing transactions meet them.
  const slot = (S * 0.75) / rollbacks;
  let previous = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < rollbacks; i++) {
    let t = S * 0.08 + i * slot + random.uniform(0, slot * 0.4);
    // Not during the crash (a rollback that can't reach the database proves nothing), and one
    // rollback and its kill-switch hold at a time.
    if (canCrash && t > crashAt - 4 && t < crashAt + 6) t = crashAt + 6;
    t = Math.max(t, previous + 9);
    if (t > S * 0.9 - 2) break;
    previous = t;
    // Every other rollback (the second, the fourth, ...) starts while a slow migrate (one row
    // per batch) is in flight: the way back must not be blocked by it.
    if (i % 2 === 1) events.push({ t: t - 0.15, action: 'migrate', batch: 1, kill: false, killAfterMs: 0 });
    // The third rollback is killed mid-way, later ones sometimes; the first runs undisturbed.
    const kill = i === 2 || (i > 3 && random.chance(0.25));
    events.push({ t, action: 'rollback', kill, killAfterMs: Math.round(random.uniform(400, 1100)), holdMs: Math.round(random.uniform(3000, 5000)) });
  }
  // Legacy runners are killed early enough for stale-row recovery (30 s + a 15 s pass) to end within the run.
  const legacyKillsBy = Math.max(S * 0.3, S - 45);
  let n = 0;
  for (let t = random.uniform(3, 5); t < S - 8; t += random.uniform(6, 12), n++) {
    let worker = n === 0 ? random.int(0, 1) : n === 1 ? random.int(2, 3) : random.int(0, 3);
    if (worker < 2 && t > legacyKillsBy) worker += 2;
    events.push({ t, action: 'kill-worker', worker, restartAfterMs: Math.round(random.uniform(500, 3000)) });
  }
  // Stall jobs away from the crash, so the stall is seen for what it is.
  const stallAt = Array.from({ length: Math.max(1, Math.round(JOBS / 4000)) }, (_, i) =>
    Math.round((i % 2 === 0 ? random.uniform(S * 0.1, S * 0.3) : random.uniform(S * 0.65, S * 0.75)) * 10) / 10,
  );
  // A surge of jobs around the crash: Postgres dies under load, with work in every process.
  const burst = { at: crashAt, jobs: Math.min(JOBS, Math.max(300, Math.round(JOBS * 0.05))) };
  return { events: events.sort((a, b) => a.t - b.t), stallAt, burst, initialPercent: random.pick([40, 60, 75]) };
}

/**
 * Why a process that exited on its own did: a process that could not even load its modules
 * (dist/ rebuilt under the run) is told apart from one that died of what happened to it.
 */
function exitCause(stderr) {
  return /SyntaxError|ERR_MODULE_NOT_FOUND|Cannot find module|does not provide an export/.test(stderr) ? 'could not load its code (dist/ changed during the run?)' : 'died';
}

/** What a process that died printed about it: its last lines that are not JSON logs or stack frames. */
function lastWords(file) {
  try {
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    const plain = lines.filter((line) => line.trim() && !line.startsWith('{') && !/^\s+at /.test(line));
    return (plain.length ? plain : lines).slice(-6).join('\n');
  } catch {
    return '';
  }
}

function tail(file, lines = 6) {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

async function main() {
  const random = prng(SEED);
  const planRandom = random.fork();
  const producerSeed = Math.floor(random.next() * 2 ** 31);
  if (argv.plan) {
    // What this seed will do, without doing it.
    process.stdout.write(`${JSON.stringify({ seed: SEED, producerSeed, ...drawPlan(planRandom, !process.env.DATABASE_URL) }, null, 2)}\n`);
    return 0;
  }
  say(`seed ${SEED} (reproduce with --seed ${SEED}); ${JOBS} jobs over ${SECONDS}s of chaos`);

  const logDir = await mkdtemp(join(tmpdir(), 'cutover-chaos-logs-'));
  const procs = new Processes(logDir);
  // What the harness did ({ action, kind, pid, at, endedAt?, detail? }): kept here for the
  // verdict, and written to "ChaosEvent" as it happens (finished ones updated at the end).
  const events = [];
  const note = (event) => {
    events.push(event);
    if (db) event.saved = track(db.query(`INSERT INTO "ChaosEvent" (at, action, kind, pid) VALUES ($1, $2, $3, $4) RETURNING id`, [event.at, event.action, event.kind, event.pid]).then(({ rows }) => rows[0].id));
    return event;
  };
  const background = new Set();
  const track = (promise) => {
    const task = promise.catch((error) => say(`background task failed: ${error.message}`)).finally(() => background.delete(task));
    background.add(task);
    return task;
  };
  let postgres;
  let pooler;
  let db;
  let phase = 'setup';
  const onSignal = (signal) => {
    say(`${signal}: stopping everything`);
    void cleanup().finally(() => process.exit(130));
  };
  let cleaned = false;
  let eventsRecorded = false;
  async function cleanup() {
    if (cleaned) return;
    cleaned = true;
    phase = 'stopping';
    await procs.killAll();
    // A run that failed half-way still leaves its record of what it did.
    if (db && !eventsRecorded) await Promise.race([recordEvents(db, events).catch(() => undefined), sleep(10_000)]);
    await db?.end();
    await pooler?.stop().catch((error) => say(`could not stop PgBouncer: ${error.message}`));
    if (postgres) await postgres.stop({ keep: argv.keep }).catch((error) => say(`could not stop Postgres: ${error.message}`));
    if (argv.keep) say(`kept: logs in ${logDir}${postgres?.dataDir ? `, data in ${postgres.dataDir}` : ''}`);
    else await rm(logDir, { recursive: true, force: true });
  }
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    postgres = await ChaosPostgres.start({ databaseUrl: process.env.DATABASE_URL, name: `cutover_chaos_${SEED}_${process.pid}` });
    // A pool of 40 server connections for some 10 processes: they share them, as behind a real pooler.
    pooler = argv.pooler ? await startPgBouncer({ serverUrl: postgres.url, poolSize: 40 }) : undefined;
    const url = pooler ? pooler.urlFor(postgres.url) : postgres.url;
    if (pooler) say(`PgBouncer in transaction mode on port ${pooler.port}: every cutover process connects through it, with no DIRECT_URL`);
    say(postgres.external ? 'Postgres: DATABASE_URL (a fresh database on it); the Postgres crash is skipped: that server is not ours to crash' : `Postgres: embedded, in ${postgres.dataDir}`);
    const plan = drawPlan(planRandom, postgres.canCrash);

    /** One CLI command to completion; retried while the database is down (exit 3). */
    async function cutover(kind, args, { retries = 0, timeoutMs = 60_000 } = {}) {
      for (let attempt = 0; ; attempt++) {
        const proc = procs.cli(kind, [...args, '--database-url', url], { stdout: 'pipe' });
        const timer = setTimeout(() => procs.kill(proc), timeoutMs);
        const exit = await proc.exited;
        clearTimeout(timer);
        if (exit.code === 3 && attempt < retries) {
          await sleep(500);
          continue;
        }
        return { code: exit.code, signal: exit.signal, stdout: proc.stdout(), stderr: tail(proc.logFile), proc };
      }
    }
    const must = async (kind, args) => {
      const result = await cutover(kind, args, { retries: 60 });
      if (result.code !== 0) throw new Error(`cutover ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
      return result;
    };

    await must('db-migrate', ['db', 'migrate']);
    db = new ResilientDb(postgres.url);
    await db.query(CHAOS_SCHEMA);
    await must('rollout', ['rollout', 'set', String(plan.initialPercent), '--reason', 'chaos: start', '--registry', registryModule]);
    await must('rollout', ['rollout', 'set', '100', '--type', 'chaos.stall', '--reason', 'chaos: stall jobs go to pg-boss', '--registry', registryModule]);

    // The workers, restarted after every kill and after any exit of their own (which is a finding).
    const workerArgs = {
      legacy: ['worker', '--engine', 'legacy', '--concurrency', '6', '--poll-ms', '200', '--shutdown-timeout', '10'],
      pgboss: ['worker', '--engine', 'pgboss', '--concurrency', '8', '--supervise-interval', '1', '--shutdown-timeout', '10'],
    };
    const workers = ['legacy', 'legacy', 'pgboss', 'pgboss'].map((kind, index) => ({ kind, index, proc: undefined }));
    // A worker (re)started while Postgres is down would refuse to start (exit 3, by design):
    // wait for the database first.
    const databaseUp = () => db.query('SELECT 1', [], { attempts: 240 }).catch(() => undefined);
    const startWorker = async (worker) => {
      await databaseUp();
      if (phase === 'stopping' || phase === 'done') return;
      const proc = procs.cli(worker.kind, [...workerArgs[worker.kind], '--registry', registryModule, '--database-url', url]);
      worker.proc = proc;
      void proc.exited.then((exit) => {
        if (proc.killedByUs || phase === 'stopping' || phase === 'done') return;
        note({ action: 'exit', kind: worker.kind, pid: proc.pid, at: new Date(), detail: { code: exit.code, signal: exit.signal, cause: exitCause(lastWords(proc.logFile)), stderr: lastWords(proc.logFile) } });
        say(`${worker.kind} worker ${proc.pid} exited on its own (code ${exit.code}, signal ${exit.signal}); restarting it`);
        track(sleep(1000).then(() => worker.proc === proc && phase !== 'stopping' && phase !== 'done' && startWorker(worker)));
      });
      return proc;
    };
    await Promise.all(workers.map(startWorker));

    // The producer, restarted (resuming its plan) should it die on its own, which is a finding too.
    const producerConfig = { url, pooled: pooler !== undefined, seed: producerSeed, flagTtlMs: FLAG_TTL_MS, jobs: JOBS, windowSeconds: SECONDS * 0.9, stallAt: plan.stallAt, burst: plan.burst, startedAt: Date.now() };
    const producerSummaries = [];
    let producer;
    let producerFinished;
    const producerDone = new Promise((resolve) => (producerFinished = resolve));
    const startProducer = async (resume) => {
      if (resume) await databaseUp();
      const proc = procs.spawn('producer', [producerEntry, JSON.stringify({ ...producerConfig, resume })], { stdout: 'pipe' });
      producer = proc;
      void proc.exited.then((exit) => {
        try {
          producerSummaries.push(JSON.parse(proc.stdout().trim().split('\n').pop()));
        } catch {
          /* it died before its summary */
        }
        if (exit.code === 0) return producerFinished(true);
        if (proc.killedByUs || phase === 'stopping' || phase === 'done') return producerFinished(false);
        note({ action: 'exit', kind: 'producer', pid: proc.pid, at: new Date(), detail: { code: exit.code, signal: exit.signal, cause: exitCause(lastWords(proc.logFile)), stderr: lastWords(proc.logFile) } });
        say(`producer ${proc.pid} exited on its own (code ${exit.code}); restarting it, resuming its plan`);
        track(sleep(1000).then(() => phase !== 'stopping' && phase !== 'done' && startProducer(true)));
      });
    };
    await startProducer(false);
    const setupSeconds = seconds(t0);
    say(`setup done in ${setupSeconds}s; producer ${producer.pid}, workers ${workers.map((w) => `${w.kind}:${w.proc.pid}`).join(' ')}`);

    // --- chaos ---
    phase = 'chaos';
    const chaosStart = Date.now();
    let rollbackActive = false;
    const counters = { percent: 0, migrate: 0, rollback: 0, rollbackSkipped: 0, workerKills: 0, commandKills: 0, crashes: 0 };

    const command = (kind, args, ev) => {
      const proc = procs.cli(kind, [...args, '--json', '--registry', registryModule, '--database-url', url], { stdout: 'pipe' });
      const event = { action: 'command', kind, pid: proc.pid, at: new Date(), detail: { args } };
      note(event);
      if (ev.kill) {
        track(
          sleep(ev.killAfterMs).then(() => {
            if (proc.exit) return;
            note({ action: 'kill', kind, pid: proc.pid, at: new Date() });
            procs.kill(proc);
            counters.commandKills += 1;
            say(`kill -9 ${kind} ${proc.pid} after ${ev.killAfterMs}ms`);
          }),
        );
      }
      return proc.exited.then((exit) => {
        event.endedAt = new Date();
        let summary = null;
        try {
          summary = JSON.parse(proc.stdout());
        } catch {
          /* killed, or failed before printing */
        }
        Object.assign(event.detail, { code: exit.code, signal: exit.signal, killed: proc.killedByUs, summary, stderr: exit.code === 0 ? '' : lastWords(proc.logFile) });
        if (!proc.killedByUs && exit.code !== 0) say(`${kind} ${proc.pid} exited ${exit.code}: ${lastWords(proc.logFile).split('\n').join(' | ')}`);
        return event;
      });
    };

    const actions = {
      percent: async (ev) => {
        counters.percent += 1;
        const result = await cutover('rollout', ['rollout', 'set', String(ev.percent), '--reason', 'chaos', '--registry', registryModule], { retries: 20 });
        if (result.code === 0) say(`percentage -> ${ev.percent}%`);
      },
      migrate: async (ev) => {
        counters.migrate += 1;
        const event = await command('migrate', ['migrate', '--batch', String(ev.batch)], ev);
        const moved = event.detail.summary?.moved;
        if (moved !== undefined) say(`migrate moved ${moved}`);
      },
      rollback: async (ev) => {
        if (rollbackActive) {
          counters.rollbackSkipped += 1;
          return;
        }
        rollbackActive = true;
        counters.rollback += 1;
        try {
          const event = await command('rollback', ['rollback', '--yes', '--reason', 'chaos'], ev);
          const moved = event.detail.summary?.moved;
          if (moved !== undefined) say(`rollback moved ${moved} back to legacy; kill switch on for ${ev.holdMs}ms more`);
          await sleep(ev.holdMs);
          await cutover('rollout', ['rollout', 'unkill', '--reason', 'chaos: after rollback', '--registry', registryModule], { retries: 20 });
        } finally {
          rollbackActive = false;
        }
      },
      'kill-worker': async (ev) => {
        const worker = workers[ev.worker];
        const proc = worker.proc;
        if (!proc || proc.exit) return;
        note({ action: 'kill', kind: worker.kind, pid: proc.pid, at: new Date() });
        procs.kill(proc);
        counters.workerKills += 1;
        say(`kill -9 ${worker.kind} worker ${proc.pid}; restart in ${ev.restartAfterMs}ms`);
        await proc.exited;
        await sleep(ev.restartAfterMs);
        if (phase === 'chaos' || phase === 'drain') await startWorker(worker);
      },
      crash: async (ev) => {
        const event = { action: 'crash', kind: 'postgres', pid: null, at: new Date(), detail: { downMs: ev.downMs } };
        note(event);
        counters.crashes += 1;
        say(`Postgres crash (pg_ctl stop -m immediate), down ${ev.downMs}ms`);
        await postgres.crash(ev.downMs);
        event.endedAt = new Date();
        say(`Postgres is back after ${seconds(ms(event.at), ms(event.endedAt))}s`);
      },
    };

    const progress = setInterval(() => {
      void db
        .query(
          `SELECT (SELECT count(*) FROM "ChaosLedger")::int AS enqueued, (SELECT count(*) FROM "Job" WHERE status = 'COMPLETED')::int AS completed,
                  (SELECT count(*) FROM "Job" WHERE status IN ('PENDING', 'RUNNING'))::int AS open`,
          [],
          { attempts: 1 },
        )
        .then(({ rows }) => say(`enqueued ${rows[0].enqueued}, rows completed ${rows[0].completed}, open ${rows[0].open}`))
        .catch(() => undefined);
    }, 10_000);

    for (const ev of plan.events) {
      const wait = chaosStart + ev.t * 1000 - Date.now();
      if (wait > 0) await sleep(wait);
      track(actions[ev.action](ev));
    }
    const rest = chaosStart + SECONDS * 1000 - Date.now();
    if (rest > 0) await sleep(rest);
    const chaosSeconds = seconds(chaosStart);

    // --- drain: stop the chaos, let everything finish ---
    phase = 'drain';
    const drainStart = Date.now();
    say('chaos over: waiting for the producer and the operator commands in flight');
    const producerFinishedInTime = await Promise.race([producerDone, sleep(60_000).then(() => null)]);
    if (producerFinishedInTime === null) {
      say('the producer did not finish within 60 s of the end of the chaos; killing it');
      procs.kill(producer);
      await producer.exited;
    }
    const producerStats = { incarnations: producerSummaries.length + events.filter((e) => e.action === 'exit' && e.kind === 'producer').length, finished: producerFinishedInTime === true };
    for (const summary of producerSummaries) {
      for (const key of ['units', 'enqueued', 'retries', 'recoveredByDuplicate', 'uncertain', 'fallbacks']) producerStats[key] = (producerStats[key] ?? 0) + (summary[key] ?? 0);
      for (const key of ['byMode', 'byEngine']) for (const [k, v] of Object.entries(summary[key] ?? {})) ((producerStats[key] ??= {})[k] = (producerStats[key][k] ?? 0) + v);
      if (summary.errors?.length) (producerStats.errors ??= []).push(...summary.errors);
    }
    await Promise.race([Promise.all(background), sleep(60_000)]);
    for (const proc of [...procs.live.values()].filter((p) => p.kind === 'migrate' || p.kind === 'rollback')) procs.kill(proc);
    await must('rollout', ['rollout', 'unkill', '--reason', 'chaos: drain', '--registry', registryModule]);
    await must('rollout', ['rollout', 'set', '100', '--reason', 'chaos: drain', '--registry', registryModule]);
    // As an operator finishing a ramp would: move what still waits on legacy to pg-boss.
    const lastMigrate = await command('migrate', ['migrate', '--batch', '500'], { kill: false });
    say(`final migrate: ${lastMigrate.detail.code === 0 ? `moved ${lastMigrate.detail.summary?.moved}` : `exited ${lastMigrate.detail.code}: ${lastMigrate.detail.stderr}`}`);
    await Promise.all(workers.filter((worker) => !worker.proc || worker.proc.exit).map(startWorker));

    // Open: work either system still has to do. A pg-boss row whose job pg-boss already ended
    // (a worker killed on its last attempt: pg-boss expires it to failed, and no worker settles
    // it) is not open work: its mirror is what `reconcile --fix` copies over next ("drift").
    const open = async () => {
      const { rows } = await db.query(
        `SELECT (SELECT count(*) FROM "Job" j WHERE j.status IN ('PENDING', 'RUNNING')
                   AND NOT (j.engine = 'PGBOSS' AND EXISTS (SELECT 1 FROM pgboss.job b WHERE b.name = j.type AND b.id = j."pgbossJobId"
                                                              AND b.state IN ('completed', 'failed', 'cancelled'))))::int AS rows,
                (SELECT count(*) FROM pgboss.job WHERE name LIKE 'chaos.%' AND name NOT LIKE '%.dlq' AND state IN ('created', 'retry', 'active'))::int AS boss`,
      );
      return rows[0];
    };
    const quiesce = async (limitSeconds) => {
      const deadline = Date.now() + limitSeconds * 1000;
      let lastSaid = 0;
      let calm = 0;
      for (;;) {
        const state = await open();
        calm = state.rows === 0 && state.boss === 0 ? calm + 1 : 0;
        if (calm >= 2) return true;
        if (Date.now() > deadline) {
          say(`still open after ${limitSeconds}s: ${state.rows} rows PENDING/RUNNING, ${state.boss} pg-boss jobs queued or active`);
          return false;
        }
        if (Date.now() - lastSaid > 10_000) {
          say(`draining: ${state.rows} rows PENDING/RUNNING, ${state.boss} pg-boss jobs queued or active`);
          lastSaid = Date.now();
        }
        await sleep(1000);
      }
    };
    const drained = await quiesce(DRAIN_SECONDS);
    clearInterval(progress);
    // What would not finish, as both systems see it, before reconcile --fix touches anything.
    const leftovers = drained
      ? []
      : (
          await db.query(
            `SELECT j.id, j.type, j.status, j.engine, j."routeReason", j.attempts, j."workerId", j."updatedAt", b.state AS "pgbossState", b.retry_count AS "pgbossRetryCount", b.completed_on AS "pgbossCompletedOn"
               FROM "Job" j LEFT JOIN pgboss.job b ON b.name = j.type AND b.id = j."pgbossJobId"
              WHERE j.status IN ('PENDING', 'RUNNING')
              UNION ALL
             SELECT NULL, b.name, NULL, NULL, NULL, NULL, NULL, NULL, b.state, b.retry_count, b.completed_on
               FROM pgboss.job b
              WHERE b.name LIKE 'chaos.%' AND b.name NOT LIKE '%.dlq' AND b.state IN ('created', 'retry', 'active')
                AND NOT EXISTS (SELECT 1 FROM "Job" j WHERE j."pgbossJobId" = b.id AND j.status IN ('PENDING', 'RUNNING'))
              LIMIT 20`,
          )
        ).rows;
    const drainSeconds = seconds(drainStart);

    // --- reconcile, with the workers still running (a fix may re-send a job) ---
    const reconcileStart = Date.now();
    const fix = await cutover('reconcile', ['reconcile', '--fix', '--json', '--grace', '0', '--registry', registryModule], { retries: 5 });
    let fixReport = null;
    try {
      fixReport = JSON.parse(fix.stdout);
    } catch {
      say(`reconcile --fix printed no report (exit ${fix.code}): ${fix.stderr}`);
    }
    const fixedAnything = fixReport?.fixed && Object.values(fixReport.fixed).some((n) => n > 0);
    if (fixedAnything) {
      say(`reconcile --fix fixed ${JSON.stringify(fixReport.fixed)}; waiting for what it re-sent`);
      await quiesce(30);
    }
    const final = await cutover('reconcile', ['reconcile', '--json', '--grace', '0', '--registry', registryModule], { retries: 5 });
    let finalReport = null;
    try {
      finalReport = JSON.parse(final.stdout);
    } catch {
      say(`reconcile printed no report (exit ${final.code}): ${final.stderr}`);
    }
    const reconcileSeconds = seconds(reconcileStart);

    // --- stop the workers, then judge what is in the database ---
    phase = 'stopping';
    await Promise.all(workers.map((worker) => worker.proc && procs.stop(worker.proc, 15_000)));
    phase = 'done';
    const registry = await loadRegistry(registryModule);
    const definitions = new Map(registry.names().map((name) => [name, registry.require(name)]));
    const verdict = await computeVerdict(db, { events, definitions, flagTtlMs: FLAG_TTL_MS, stallMs: STALL_MS });
    await recordEvents(db, events);
    eventsRecorded = true;

    const commands = (kind) => events.filter((e) => e.action === 'command' && e.kind === kind);
    const crashes = events.filter((e) => e.action === 'crash');
    const overlapsCrash = (e) => crashes.some((c) => ms(c.at) - 2000 <= ms(e.endedAt ?? e.at) && ms(c.endedAt ?? Date.now()) + 2000 >= ms(e.at));
    const rollbackFailures = commands('rollback').filter((e) => !e.detail.killed && e.detail.code !== 0 && !overlapsCrash(e));
    const unexpectedExits = events.filter((e) => e.action === 'exit');
    const findings = finalReport ? Object.fromEntries(Object.entries(finalReport.findings).map(([name, f]) => [name, f.count])) : null;

    const checks = [
      check('no job lost', verdict.logical.lost === 0 && drained, `${verdict.logical.lost} lost${drained ? '' : `; the run did not drain in ${DRAIN_SECONDS}s (${leftovers.length}${leftovers.length === 20 ? '+' : ''} rows or jobs stayed open, see drainLeftovers)`}`),
      check('every extra execution explained', verdict.executions.unexplained === 0, `${verdict.executions.unexplained} unexplained`),
      check('no chain past its attempts', verdict.chainsPastAttempts.count === 0, `${verdict.chainsPastAttempts.count} chains`),
      check('reconcile clean after --fix', finalReport !== null && finalReport.total === 0, finalReport ? `${finalReport.total} finding(s) ${JSON.stringify(findings)}` : 'no report'),
      check('a success is never run again', verdict.completedThenRun.count === 0, `${verdict.completedThenRun.count} jobs ran after a committed COMPLETED`),
      check('retries keep their scheduled time', verdict.earlyRetries.count === 0, `${verdict.earlyRetries.count} retries ran early`),
      check('nothing runs on pg-boss under the kill switch', verdict.killSwitchEscapes.count === 0, `${verdict.killSwitchEscapes.count} executions ${JSON.stringify(verdict.killSwitchEscapes.byRouteReason)}`),
      check('the way back is never blocked', rollbackFailures.length === 0, `${rollbackFailures.length} rollback(s) failed`),
      check('processes survive a Postgres restart (no exit but kill -9)', unexpectedExits.length === 0, `${unexpectedExits.length} unexpected exit(s) ${JSON.stringify(countBy(unexpectedExits, (e) => e.kind))}`),
      check('no completion without an execution', verdict.phantomCompletions.count === 0, `${verdict.phantomCompletions.count} jobs`),
    ];
    const ok = checks.every((c) => c.ok);
    const report = {
      ok,
      seed: SEED,
      jobs: JOBS,
      seconds: SECONDS,
      postgres: `${postgres.external ? 'DATABASE_URL (crash skipped: not ours to crash)' : 'embedded'}${pooler ? ', through PgBouncer (transaction mode)' : ''}`,
      durations: { setup: setupSeconds, chaos: chaosSeconds, drain: drainSeconds, reconcile: reconcileSeconds, total: seconds(t0) },
      logical: verdict.logical,
      drainLeftovers: leftovers,
      executions: verdict.executions,
      chainsPastAttempts: verdict.chainsPastAttempts,
      invariants: {
        completedThenRun: verdict.completedThenRun,
        earlyRetries: verdict.earlyRetries,
        killSwitchEscapes: verdict.killSwitchEscapes,
        phantomCompletions: verdict.phantomCompletions,
        rollbackFailures: rollbackFailures.map((e) => ({ pid: e.pid, at: iso(e.at), code: e.detail.code, stderr: e.detail.stderr })),
        unexpectedExits: unexpectedExits.map((e) => ({ kind: e.kind, pid: e.pid, at: iso(e.at), ...e.detail })),
      },
      reconcile: { fixed: fixReport?.fixed ?? null, findings, total: finalReport?.total ?? null },
      chaos: {
        ...counters,
        kills: countBy(events.filter((e) => e.action === 'kill'), (e) => e.kind),
        migrates: summarizeCommands(commands('migrate')),
        rollbacks: summarizeCommands(commands('rollback')),
        crash: crashes.map((c) => ({ at: iso(c.at), downSeconds: c.endedAt ? seconds(ms(c.at), ms(c.endedAt)) : null })),
        stallJobs: plan.stallAt.length,
        killSwitch: verdict.killSwitch,
      },
      finalEngine: verdict.finalEngine,
      producer: producerStats,
      checks,
    };
    if (argv.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else printSummary(report);
    return ok ? 0 : 1;
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function check(name, ok, detail) {
  return { name, ok, detail };
}

function ms(date) {
  return date instanceof Date ? date.getTime() : new Date(date).getTime();
}

function iso(date) {
  return new Date(ms(date)).toISOString();
}

function countBy(items, key) {
  const counts = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}

function summarizeCommands(list) {
  return {
    started: list.length,
    ok: list.filter((e) => e.detail.code === 0).length,
    killed: list.filter((e) => e.detail.killed).length,
    // Exit 1: the command refused or stopped by design (a rollback holds the lock, the kill
    // switch is on) or found a problem; exit 3: it could not reach the database (the crash).
    refused: list.filter((e) => !e.detail.killed && e.detail.code === 1).length,
    failed: list.filter((e) => !e.detail.killed && e.detail.code !== 0).length,
    moved: list.reduce((sum, e) => sum + (e.detail.summary?.moved ?? 0), 0),
    failures: list.filter((e) => !e.detail.killed && e.detail.code !== 0).map((e) => `${iso(e.at).slice(11, 23)} exit ${e.detail.code}: ${e.detail.stderr.split('\n').filter((line) => line.startsWith('cutover:')).pop() ?? e.detail.stderr.split('\n').pop()}`),
  };
}

/** Completes each event's row: its end and details (written at the time, or now if that failed). */
async function recordEvents(db, events) {
  for (const e of events) {
    const id = await e.saved?.catch(() => undefined);
    const detail = JSON.stringify(e.detail ?? null);
    if (id) await db.query(`UPDATE "ChaosEvent" SET "endedAt" = $2, detail = $3 WHERE id = $1`, [id, e.endedAt ?? null, detail], { attempts: 20 });
    else await db.query(`INSERT INTO "ChaosEvent" (at, "endedAt", action, kind, pid, detail) VALUES ($1, $2, $3, $4, $5, $6)`, [e.at, e.endedAt ?? null, e.action, e.kind, e.pid, detail], { attempts: 20 });
  }
}

function printSummary(r) {
  const lines = [
    '',
    `chaos run, seed ${r.seed}: ${r.jobs} jobs, ${r.seconds}s of chaos on ${r.postgres} Postgres; ${r.durations.total}s in all (setup ${r.durations.setup}s, chaos ${r.durations.chaos}s, drain ${r.durations.drain}s, reconcile ${r.durations.reconcile}s)`,
    `  chaos:       ${r.chaos.percent} percentage moves, ${r.chaos.migrates.started} migrates (${r.chaos.migrates.ok} ok, ${r.chaos.migrates.killed} killed, ${r.chaos.migrates.refused} refused or stopped, ${r.chaos.migrates.failed - r.chaos.migrates.refused} errors; ${r.chaos.migrates.moved} jobs moved), ${r.chaos.rollbacks.started} rollbacks (${r.chaos.rollbacks.ok} ok, ${r.chaos.rollbacks.killed} killed, ${r.chaos.rollbacks.failed} failed; ${r.chaos.rollbacks.moved} jobs moved back), ${r.chaos.workerKills} worker kills ${JSON.stringify(r.chaos.kills)}, ${r.chaos.stallJobs} stall job(s), Postgres crash: ${r.chaos.crash.length ? r.chaos.crash.map((c) => `${c.at.slice(11, 19)} down ${c.downSeconds}s`).join(', ') : 'skipped'}`,
    `  producer:    ${r.producer.incarnations} incarnation(s)${r.producer.finished ? '' : ', DID NOT FINISH'}; ${r.logical.byMode.tx ?? 0} jobs in late-committing transactions, ${r.logical.byMode.direct ?? 0} direct; ${r.producer.retries ?? 0} units retried after errors, ${r.producer.fallbacks ?? 0} fallbacks`,
    `  logical jobs: ${r.logical.enqueued} enqueued, ${r.logical.completed} completed, ${r.logical.failedForGood} failed for good, ${r.logical.lost} LOST`,
    `  executions:  ${r.executions.total} (${JSON.stringify(r.executions.byEngine)}); ${r.executions.extra} beyond one per logical job: ${r.executions.byDesign} designed retries, explained by kill ${r.executions.explained.kill}, stall ${r.executions.explained.stall}, crash ${r.executions.explained.crash}, recorded failure ${r.executions.explained.failed}; ${r.executions.unexplained} UNEXPLAINED`,
    `  chains past their attempts: ${r.chainsPastAttempts.count}`,
    `  reconcile:   fixed ${JSON.stringify(r.reconcile.fixed)}; then ${r.reconcile.total} finding(s) ${JSON.stringify(r.reconcile.findings)}`,
    '',
    ...r.checks.map((c) => `  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`),
  ];
  const samples = [
    ['left open when the drain timed out', r.drainLeftovers, 10],
    ['lost', r.logical.lostSample],
    ['unexplained extra executions', r.executions.unexplainedSample],
    ['retries after a recorded failure (not designed, not a dead worker)', r.executions.failedSample],
    ['chains past their attempts', r.chainsPastAttempts.sample],
    ['ran after COMPLETED', r.invariants.completedThenRun.sample],
    ['early retries', r.invariants.earlyRetries.sample],
    ['kill switch escapes', r.invariants.killSwitchEscapes.sample],
    ['rollback failures', r.invariants.rollbackFailures, 10],
    ['unexpected exits', r.invariants.unexpectedExits, 10],
    ['migrate runs that exited non-zero (not killed)', r.chaos.migrates.failures, 10],
  ];
  for (const [name, sample, max = 3] of samples) {
    if (!sample?.length) continue;
    lines.push('', `  ${name} (${sample.length > max ? `${max} of ${sample.length}` : sample.length}):`);
    for (const item of sample.slice(0, max)) lines.push(`    ${JSON.stringify(item)}`);
  }
  lines.push('', r.ok ? 'PASS: no job lost, every extra execution explained' : 'FAIL', '');
  process.stdout.write(lines.join('\n'));
}

let code;
try {
  code = await main();
} catch (error) {
  log.error({ err: error }, 'chaos harness failed');
  process.stderr.write(`chaos: harness error: ${error?.stack ?? error}\n`);
  code = 1;
}
process.exit(code);
