// A worker's health probes (`cutover worker --probe-port`), as a kubelet or Compose sees them:
// the real CLI worker, its database behind a TCP proxy the test cuts and restores, and SIGTERM
// while a job runs.
import { createServer, type AddressInfo, type Server } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { databaseProbe, PROBE_PATHS, WorkerProbes } from '../../src/runtime/probes.js';
import { quietLog } from '../helpers/engines.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { fixtureRegistry, jobRows } from '../helpers/jobs.js';
import { killStragglers, startCli, type CliProcess } from '../helpers/process.js';
import { startCuttableProxy, type CuttableProxy } from '../helpers/proxy.js';
import { runCliInProcess } from '../helpers/cli.js';
import { pollUntil } from '../helpers/wait.js';
import { freePort } from '../../src/support/net.js';

const fixture = useEngineFixture({ percent: 100 });
let pool: Pool;
let proxy: CuttableProxy | undefined;
const closers: (() => Promise<unknown>)[] = [];
beforeEach(() => ({ pool } = fixture));
afterEach(async () => {
  await killStragglers();
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
  await proxy?.close();
  proxy = undefined;
});

interface Probe {
  status: number;
  body: { status: string; reason?: string };
}

/** One probe request; undefined while nothing listens. */
async function probe(port: number, path: string): Promise<Probe | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
    return { status: response.status, body: (await response.json()) as Probe['body'] };
  } catch {
    return undefined;
  }
}

const answers = (port: number, path: string, status: number) => async () => {
  const answer = await probe(port, path);
  return answer?.status === status ? answer : undefined;
};

async function startWorker(url: string, port: number, extra: string[] = []): Promise<CliProcess> {
  const worker = startCli(['worker', '--engine', 'pgboss', '--registry', fixtureRegistry, '--database-url', url, '--probe-port', String(port), '--probe-host', '127.0.0.1', ...extra]);
  const started = await pollUntil('the worker to be ready', answers(port, PROBE_PATHS.ready, 200), { timeoutMs: 30_000, intervalMs: 100 }).catch((error: unknown) => {
    throw new Error(`${(error as Error).message}; worker said: ${worker.stderr()}`);
  });
  expect(started.body).toEqual({ status: 'ready' });
  return worker;
}

describe('a pg-boss worker with --probe-port', () => {
  it('is ready, answers 503 within seconds when Postgres goes away, and 200 again when it is back', async () => {
    proxy = await startCuttableProxy(fixture.database.url);
    const port = await freePort();
    const worker = await startWorker(proxy.url, port);
    expect(await probe(port, PROBE_PATHS.live)).toEqual({ status: 200, body: { status: 'alive' } });
    expect(await probe(port, PROBE_PATHS.startup)).toEqual({ status: 200, body: { status: 'started' } });

    await proxy.cut();
    const cutAt = Date.now();
    const down = await pollUntil('/readyz to say the database is unreachable', answers(port, PROBE_PATHS.ready, 503), { timeoutMs: 10_000, intervalMs: 100 });
    expect(Date.now() - cutAt).toBeLessThan(5000);
    expect(down.body.reason).toMatch(/^database unreachable: /);
    // Alive all the same: a restart would not bring the database back.
    expect((await probe(port, PROBE_PATHS.live))?.status).toBe(200);

    await proxy.restore();
    await pollUntil('/readyz to be 200 again', answers(port, PROBE_PATHS.ready, 200), { timeoutMs: 15_000, intervalMs: 100 });

    worker.kill('SIGTERM');
    expect((await worker.exited).code).toBe(0);
  });

  it('answers 503 on /readyz from SIGTERM on while the running job finishes, then exits 0', async () => {
    const port = await freePort();
    const worker = await startWorker(fixture.database.url, port, ['--shutdown-timeout', '30']);
    let exited = false;
    void worker.exited.then(() => (exited = true));
    const { id, engine } = await fixture.producer.manager.enqueue('test.record-slow', { tag: 'drain', ms: 3000 });
    expect(engine).toBe('PGBOSS');
    await pollUntil('the job to run', async () => (await jobRows(pool, 'id = $1', [id]))[0]?.status === 'RUNNING');

    worker.kill('SIGTERM');
    const draining = await pollUntil('/readyz to answer 503', answers(port, PROBE_PATHS.ready, 503), { timeoutMs: 5000, intervalMs: 50 });
    expect(draining.body).toEqual({ status: 'not ready', reason: 'shutting down: running jobs are finishing' });
    // Seen while the job was still running and the process still up: traffic stops before the drain ends.
    expect((await jobRows(pool, 'id = $1', [id]))[0]?.status).toBe('RUNNING');
    expect(exited).toBe(false);
    expect((await probe(port, PROBE_PATHS.live))?.status).toBe(200);

    expect((await worker.exited).code).toBe(0);
    expect((await jobRows(pool, 'id = $1', [id]))[0]?.status).toBe('COMPLETED');
    const { rows } = await pool.query(`SELECT engine FROM "DemoDelivery" WHERE "jobId" = $1`, [id]);
    expect(rows).toEqual([{ engine: 'PGBOSS:drain' }]);
  });
});

describe('a legacy runner with --probe-port', () => {
  it('is ready once it polls, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const worker = startCli(['worker', '--engine', 'legacy', '--registry', fixtureRegistry, '--database-url', fixture.database.url, '--probe-port', String(port), '--probe-host', '127.0.0.1']);
    await pollUntil('the runner to be ready', answers(port, PROBE_PATHS.ready, 200), { timeoutMs: 30_000, intervalMs: 100 });
    expect(await probe(port, PROBE_PATHS.startup)).toEqual({ status: 200, body: { status: 'started' } });
    worker.kill('SIGTERM');
    expect((await worker.exited).code).toBe(0);
  });
});

describe('the probe port', () => {
  it('is refused at once outside 1-65535, in one line, with exit code 2', async () => {
    for (const value of ['0', '65536', 'http']) {
      const result = await runCliInProcess(['worker', '--engine', 'pgboss', '--probe-port', value]);
      expect(result.code).toBe(2);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
      expect(result.stderr).toContain('must be an integer from 1 to 65535');
    }
  });

  it('taken by another process: the worker says so in one line and exits 3 without starting', async () => {
    const taken: Server = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise((resolve) => taken.close(resolve)));
    const { port } = taken.address() as AddressInfo;
    const result = await runCliInProcess(['worker', '--engine', 'pgboss', '--registry', fixtureRegistry, '--database-url', fixture.database.url, '--probe-port', String(port), '--probe-host', '127.0.0.1']);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(`cannot serve probes on 127.0.0.1:${port} (EADDRINUSE)`);
  });
});

describe('WorkerProbes', () => {
  it('starts not ready, reuses one database check for a second, and says why it is not ready', async () => {
    proxy = await startCuttableProxy(fixture.database.url);
    const database = databaseProbe(proxy.url, { timeoutMs: 1000 });
    closers.push(() => database.close());
    let checks = 0;
    let now = 0;
    const probes = new WorkerProbes({ port: 0, checkDatabase: async () => void (checks += 1, await database.check()), engine: 'pg-boss', log: quietLog, now: () => now });

    expect(await probes.answer(PROBE_PATHS.startup)).toEqual({ status: 503, body: { status: 'starting', reason: 'pg-boss not started yet' } });
    expect(await probes.answer(PROBE_PATHS.ready)).toEqual({ status: 503, body: { status: 'not ready', reason: 'pg-boss not started yet' } });
    probes.markEngineStarted();
    expect((await probes.answer(PROBE_PATHS.ready))?.body.reason).toBe('rollout flags not loaded yet');
    probes.markFlagsLoaded();
    expect(await probes.answer(PROBE_PATHS.startup)).toEqual({ status: 200, body: { status: 'started' } });

    // Probes at once share one check; within the second they reuse its answer.
    const [first, second] = await Promise.all([probes.answer(PROBE_PATHS.ready), probes.answer(PROBE_PATHS.ready)]);
    expect([first?.status, second?.status]).toEqual([200, 200]);
    now = 999;
    expect((await probes.answer(PROBE_PATHS.ready))?.status).toBe(200);
    expect(checks).toBe(1);

    await proxy.cut();
    now = 1000;
    expect((await probes.answer(PROBE_PATHS.ready))?.body).toMatchObject({ status: 'not ready', reason: expect.stringMatching(/^database unreachable: /) });
    expect(checks).toBe(2);
    await proxy.restore();
    now = 2000;
    expect((await probes.answer(PROBE_PATHS.ready))?.status).toBe(200);

    probes.markDraining();
    expect((await probes.answer(PROBE_PATHS.ready))?.body.reason).toBe('shutting down: running jobs are finishing');
    expect((await probes.answer(PROBE_PATHS.live))?.status).toBe(200);
    expect(await probes.answer('/metrics')).toBeUndefined();
  });
});
