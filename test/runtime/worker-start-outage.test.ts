// A worker (re)started as Postgres crashes: whichever of its start's connections the crash
// meets (reading the table, starting pg-boss, creating queues, LISTEN, the rollout flags), it
// waits the outage out and works, as a running worker does, instead of exiting half-started.
// The real CLI worker, its database behind a proxy that drops the nth connection it sees.
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { repoRoot } from '../helpers/cli.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { setPercent } from '../helpers/engines.js';
import { jobRows } from '../helpers/jobs.js';
import { killStragglers, startCli } from '../helpers/process.js';
import { startCuttableProxy, type CuttableProxy } from '../helpers/proxy.js';
import { pollUntil } from '../helpers/wait.js';

const recurringRegistry = join(repoRoot, 'test', 'fixtures', 'recurring-registry.mjs');
const fixture = useEngineFixture({ percent: 100 });
let pool: Pool;
let proxy: CuttableProxy | undefined;
beforeEach(() => ({ pool } = fixture));
afterEach(async () => {
  await killStragglers();
  await proxy?.close();
  proxy = undefined;
});

/** Starts a worker whose nth connection meets a crash of 1.5 s; settles once the worker has run a job enqueued after it and stopped cleanly. */
async function startThroughCrash(engine: 'pgboss' | 'legacy', nth: number): Promise<void> {
  proxy = await startCuttableProxy(fixture.database.url);
  const crashed = proxy.crashAtConnection(nth, 1500);
  const worker = startCli(['worker', '--engine', engine, '--registry', recurringRegistry, '--database-url', proxy.url]);
  let exit: { code: number | null } | undefined;
  void worker.exited.then((result) => (exit = result));
  await Promise.race([crashed, worker.exited]);
  expect(exit, `worker exited as the crash met its connection ${nth}: ${worker.stderr()}`).toBeUndefined();
  if (engine === 'legacy') await setPercent(pool, 0);
  const { id } = await fixture.producer.manager.enqueue('test.record', { tag: `crash-at-${nth}` });
  await pollUntil(`the job enqueued after a crash at connection ${nth} to complete`, async () => exit !== undefined || (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'COMPLETED', {
    timeoutMs: 45_000,
    intervalMs: 100,
  });
  expect(exit, `worker exited after the crash at its connection ${nth}: ${worker.stderr()}`).toBeUndefined();
  worker.kill('SIGTERM');
  expect((await worker.exited).code).toBe(0);
}

describe('a worker started as Postgres crashes', () => {
  // Connection 1 is the reachability check, which always waited; 2 on are the start's own.
  for (const nth of [2, 3, 4, 5, 6, 7, 8]) {
    it(`pg-boss: rides out a crash at its connection ${nth} and works`, () => startThroughCrash('pgboss', nth), 90_000);
  }
  it('legacy: rides out a crash at its connection 2 and works', () => startThroughCrash('legacy', 2), 90_000);
});
