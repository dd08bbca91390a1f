// The chaos run's producer: a process of its own that enqueues jobs through the library, as an
// application would, while the harness (run.mjs) moves the percentage, migrates, rolls back,
// kills workers and crashes Postgres under it.
//
//   node scripts/chaos/producer.mjs '<json: { url, seed, flagTtlMs, jobs, windowSeconds,
//                                            stallAt: [s...], burst: { at, jobs }, startedAt, resume }>'
//
// Jobs go out in "units", all drawn up front from the seed and spread evenly over the window:
//   - direct (60 % of units): one enqueueMany of 1-20 jobs of one type, in the RolloutManager's
//     own transaction;
//   - transactional (40 %): 1-4 jobs enqueued with { tx } inside the caller's own transaction,
//     which also writes the business row (ChaosLedger) and commits 0.5-2 s later; up to 12
//     such transactions are open at once;
//   - a surge of direct units around the moment the harness crashes Postgres (burst);
//   - one chaos.stall job at each of stallAt (sent once the kill switch is off).
// Every job's id is its logical key `k` (also in its payload). After a failure (Postgres
// crashed) a unit is retried with the same ids: a unique violation then means the first try had
// committed after all, so nothing is enqueued twice and nothing is counted that didn't commit.
// It prints one JSON document on stdout when done.
import { clientTx } from '../../dist/db/sql.js';
import { createPool, ensureQueues, FlagCache, loadRegistry, RolloutManager, startBoss } from '../../dist/index.js';
import { isConnectionError, log, prng, registryModule, sleep } from './lib.mjs';

const config = JSON.parse(process.argv[2]);
const random = prng(config.seed);

/** A v4 UUID from the seeded generator: the same run, the same ids. */
function uuid() {
  const bytes = Array.from({ length: 16 }, () => random.int(0, 255));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function drawType() {
  const x = random.next();
  return x < 0.82 ? 'chaos.fast' : x < 0.96 ? 'chaos.flaky' : 'chaos.doomed';
}

/** The whole plan, drawn before anything runs. */
function plan() {
  const units = [];
  const burst = Math.min(config.burst?.jobs ?? 0, config.jobs);
  const steady = config.jobs - burst;
  let n = 0;
  while (n < steady) {
    const tx = random.chance(0.4);
    const size = Math.min(steady - n, tx ? random.int(1, 4) : random.int(1, 20));
    const type = drawType();
    const jobs = Array.from({ length: size }, () => {
      const job = { k: uuid(), type: tx ? drawType() : type, n: n++ };
      return job;
    });
    units.push({ kind: tx ? 'tx' : 'direct', type, jobs, holdMs: tx ? Math.round(random.uniform(500, 2000)) : 0, dueMs: ((n - size) / steady) * config.windowSeconds * 1000 });
  }
  // A surge of small units due from 0.3 s before to 0.3 s after the moment the harness
  // crashes Postgres, faster than one producer can enqueue them, so the crash finds every
  // process busy: the producer inside its transactions, the workers settling.
  const surgeUnits = Math.ceil(burst / 3);
  for (let i = 0, left = burst; left > 0; i++) {
    const size = Math.min(left, 3);
    const type = drawType();
    units.push({ kind: 'direct', type, jobs: Array.from({ length: size }, () => ({ k: uuid(), type, n: n++ })), holdMs: 0, dueMs: (config.burst.at - 0.3 + (0.6 * i) / surgeUnits) * 1000 });
    left -= size;
  }
  const stalls = (config.stallAt ?? []).map((at) => ({ kind: 'stall', type: 'chaos.stall', jobs: [{ k: uuid(), type: 'chaos.stall', n: n++ }], holdMs: 0, dueMs: at * 1000 }));
  return [...units, ...stalls].sort((a, b) => a.dueMs - b.dueMs);
}

const stats = { units: 0, enqueued: 0, byMode: { tx: 0, direct: 0 }, byEngine: { LEGACY: 0, PGBOSS: 0, unknown: 0 }, retries: 0, recoveredByDuplicate: 0, uncertain: 0, errors: [] };

const pool = createPool(config.url, { max: 16, applicationName: 'chaos-producer' });
const boss = await startBoss({ databaseUrl: config.url, log, max: 4 });
const registry = await loadRegistry(registryModule);
await ensureQueues(boss, registry, log);
// Behind a transaction pooler with no direct URL the cache does not LISTEN: it re-reads the flags on their TTL.
const flags = new FlagCache({ pool, ...(config.pooled ? {} : { databaseUrl: config.url }), log, ttlMs: config.flagTtlMs });
await flags.listen();
const manager = new RolloutManager({ pool, boss, registry, flags, log });

async function ledger(db, jobs, mode, engines) {
  await db.query(
    `INSERT INTO "ChaosLedger" (k, type, mode, engine) SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])
       ON CONFLICT (k) DO UPDATE SET mode = EXCLUDED.mode, engine = COALESCE(EXCLUDED.engine, "ChaosLedger".engine)`,
    [jobs.map((j) => j.k), jobs.map((j) => j.type), jobs.map(() => mode), jobs.map((j) => engines?.get(j.k) ?? null)],
  );
}

/** Retries a write until Postgres answers; for the harness's own bookkeeping. */
async function persist(write) {
  for (let attempt = 0; ; attempt++) {
    try {
      return await write();
    } catch (error) {
      if (!isConnectionError(error) || attempt > 600) throw error;
      await sleep(200);
    }
  }
}

const ignore = () => undefined;
const payloadOf = (job) => ({ k: job.k, n: job.n });
const isDuplicate = (error) => error?.code === '23505';

function count(jobs, mode, engines) {
  stats.enqueued += jobs.length;
  stats.byMode[mode] += jobs.length;
  for (const job of jobs) stats.byEngine[engines?.get(job.k) ?? 'unknown'] += 1;
}

async function direct(unit) {
  for (let attempt = 0; ; attempt++) {
    try {
      const results = await manager.enqueueMany(unit.type, unit.jobs.map((job) => ({ id: job.k, payload: payloadOf(job) })));
      const engines = new Map(results.map((r) => [r.id, r.engine]));
      await persist(() => ledger(pool, unit.jobs, 'direct', engines));
      count(unit.jobs, 'direct', engines);
      return;
    } catch (error) {
      if ((attempt > 0 || config.resume) && isDuplicate(error)) {
        // The failed try (or the previous producer's) had committed after all.
        stats.recoveredByDuplicate += unit.jobs.length;
        await persist(() => ledger(pool, unit.jobs, 'direct'));
        count(unit.jobs, 'direct');
        return;
      }
      if (!isConnectionError(error) || attempt > 300) return giveUp(unit, error);
      stats.retries += 1;
      await sleep(250);
    }
  }
}

async function transactional(unit) {
  for (let attempt = 0; ; attempt++) {
    let client;
    try {
      client = await pool.connect();
      // A checked-out client whose server goes away emits 'error': ours to handle, not a crash.
      client.on('error', ignore);
      await client.query('BEGIN');
      const tx = clientTx(client);
      const engines = new Map();
      for (const job of unit.jobs) {
        const result = await manager.enqueue(job.type, payloadOf(job), { id: job.k, tx });
        engines.set(job.k, result.engine);
      }
      // The business write of the outbox, in the same transaction as the jobs.
      await ledger(client, unit.jobs, 'tx', engines);
      await sleep(unit.holdMs);
      await client.query('COMMIT');
      client.off('error', ignore);
      client.release();
      count(unit.jobs, 'tx', engines);
      return;
    } catch (error) {
      if (client) {
        await client.query('ROLLBACK').catch(() => undefined);
        client.release(true);
      }
      if (attempt > 0 && isDuplicate(error)) {
        stats.recoveredByDuplicate += unit.jobs.length;
        count(unit.jobs, 'tx');
        return;
      }
      if (!isConnectionError(error) || attempt > 300) return giveUp(unit, error);
      stats.retries += 1;
      await sleep(250);
    }
  }
}

async function giveUp(unit, error) {
  stats.uncertain += unit.jobs.length;
  if (stats.errors.length < 20) stats.errors.push({ kind: unit.kind, code: error?.code ?? null, message: String(error?.message ?? error) });
  log.error({ err: error, kind: unit.kind }, 'could not enqueue a unit; recorded as uncertain');
  await persist(() => ledger(pool, unit.jobs, 'uncertain'));
}

/** A stall job is meant to stall a pg-boss worker: sent while the kill switch is off. */
async function stall(unit) {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const { defaultFlag, typeFlag } = await flags.get('chaos.stall').catch(() => ({}));
    if (!defaultFlag?.killSwitch && !typeFlag?.killSwitch) break;
    await sleep(200);
  }
  await direct({ ...unit, type: 'chaos.stall' });
}

// A producer the harness restarted (the previous one died) resumes the same plan on the same
// clock: units already in the ledger are done; for the others a unique violation on the first
// try means the previous producer had committed them without getting to write the ledger.
const units = plan();
const started = config.startedAt ?? Date.now();
const done = new Set();
if (config.resume) {
  const { rows } = await persist(() => pool.query(`SELECT k::text AS k FROM "ChaosLedger"`));
  for (const row of rows) done.add(row.k);
}
const open = new Set();
const MAX_OPEN_TX = 12;
for (const unit of units) {
  if (unit.jobs.every((job) => done.has(job.k))) continue;
  const wait = started + unit.dueMs - Date.now();
  if (wait > 0) await sleep(wait);
  stats.units += 1;
  if (unit.kind === 'tx') {
    while (open.size >= MAX_OPEN_TX) await Promise.race(open);
    const task = transactional(unit).finally(() => open.delete(task));
    open.add(task);
  } else if (unit.kind === 'stall') {
    const task = stall(unit).finally(() => open.delete(task));
    open.add(task);
  } else {
    await direct(unit);
  }
}
await Promise.all(open);
stats.seconds = Math.round((Date.now() - started) / 100) / 10;
stats.fallbacks = manager.fallbackCount;

await flags.close();
await boss.stop({ graceful: false, close: true }).catch(() => undefined);
await pool.end().catch(() => undefined);
process.stdout.write(`${JSON.stringify(stats)}\n`);
process.exit(0);
