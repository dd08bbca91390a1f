// One worker in a process of its own, as an operator runs it, for what must be measured per
// process (memory with the legacy runner's children, throughput with 1, 2, 4 processes):
//   node scripts/bench/worker-process.mjs --engine pgboss|legacy|bare --database-url URL [--concurrency N] [--types a,b]
// (bare: a plain boss.work with a no-op handler and the engine's fetch options, no mirror rows.)
// Prints one JSON line {"ready":true} once it takes jobs; SIGTERM stops it gracefully and it
// prints its stats as one JSON line.
import { parseArgs } from 'node:util';
import { createPool } from '../../dist/db/pool.js';
import { loadRegistry } from '../../dist/jobs/registry.js';
import { LegacyRunner } from '../../dist/legacy/runner.js';
import { startBoss } from '../../dist/pgboss/boss.js';
import { BossWorker } from '../../dist/pgboss/worker.js';
import { BENCH_REGISTRY, log } from './lib.mjs';

const { values } = parseArgs({
  options: {
    engine: { type: 'string' },
    'database-url': { type: 'string' },
    concurrency: { type: 'string', default: '4' },
    types: { type: 'string' },
  },
});
const engine = values.engine;
const databaseUrl = values['database-url'];
const concurrency = Number(values.concurrency);
if (!['pgboss', 'legacy', 'bare'].includes(engine) || !databaseUrl || !(concurrency >= 1)) {
  process.stderr.write('usage: worker-process.mjs --engine pgboss|legacy|bare --database-url URL [--concurrency N] [--types a,b]\n');
  process.exit(2);
}
const types = values.types ? values.types.split(',') : undefined;
const registry = await loadRegistry(BENCH_REGISTRY);
// Pools sized as `cutover worker` sizes them: for pg-boss ours the jobs in flight plus two, at
// most 20, and pg-boss's its default (10); the legacy runner 4 (its children connect on their own).
const pool = createPool(databaseUrl, { max: engine === 'legacy' ? 4 : Math.min(concurrency + 2, 20), applicationName: `bench-${engine}-worker` });
const said = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);

let stop;
if (engine === 'pgboss') {
  const boss = await startBoss({ databaseUrl, log, role: 'worker' });
  const worker = new BossWorker({ boss, pool, registry, log, concurrency, ...(types ? { types } : {}) });
  await worker.start();
  stop = () => worker.stop(10_000);
} else if (engine === 'bare') {
  const boss = await startBoss({ databaseUrl, log, role: 'worker' });
  for (const type of types ?? registry.names()) {
    await boss.work(type, { batchSize: concurrency, burstWhenBatchFull: true, includeMetadata: true, pollingIntervalSeconds: 1, notifyPollingIntervalSeconds: 1 }, async () => undefined);
  }
  stop = async () => {
    await boss.stop({ graceful: true, timeout: 10_000, close: true });
    return {};
  };
} else {
  const controller = new AbortController();
  const runner = new LegacyRunner({ pool, databaseUrl, registry, log, concurrency, ...(types ? { types } : {}) });
  const running = runner.run(controller.signal);
  stop = () => {
    controller.abort();
    return running;
  };
}
said({ ready: true, pid: process.pid });
process.once('SIGTERM', async () => {
  const stats = await stop();
  await pool.end();
  said({ stopped: true, stats });
  process.exit(0);
});
