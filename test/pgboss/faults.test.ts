// DESIGN §12 "a success is never run again" and "a job runs as often as its retries allow", on
// the pg-boss engine under the faults production has: the database going away between a
// handler's side effect and its commit, and a failure right after a fetch, before anything ran.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { pino } from 'pino';
import type { Pool } from '../../src/db/pool.js';
import { defineJob } from '../../src/jobs/define.js';
import { createRegistry, type JobRegistry } from '../../src/jobs/registry.js';
import { startBoss } from '../../src/pgboss/boss.js';
import { BossWorker } from '../../src/pgboss/worker.js';
import { bossState, quietLog, setPercent, startProducer, type Producer } from '../helpers/engines.js';
import { useDatabaseFixture } from '../helpers/fixture.js';
import { jobRows, testPool } from '../helpers/jobs.js';
import { startCuttableProxy, type CuttableProxy } from '../helpers/proxy.js';
import { pollUntil } from '../helpers/wait.js';

const fixture = useDatabaseFixture();
let pool: Pool;
let producer: Producer | undefined;
let proxy: CuttableProxy | undefined;
const cleanups: (() => Promise<unknown>)[] = [];
beforeEach(() => ({ pool } = fixture));
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  await producer?.close();
  producer = undefined;
  await proxy?.close();
  proxy = undefined;
});

/** A log that keeps each line's message, so a test can wait on what the worker said. */
function recordingLog() {
  const messages: string[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void messages.push((JSON.parse(line) as { msg: string }).msg) });
  return { log, messages };
}

/** A job type whose runs the test counts and whose handler returns when the test opens its gate. */
function gatedType(name: string, retryLimit: number) {
  const runs: number[] = [];
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const definition = defineJob({
    name,
    schema: z.object({}).passthrough(),
    retry: { limit: retryLimit, delaySeconds: 0 },
    async handler(_payload, context) {
      runs.push(context.attempt);
      await gate;
      return { done: true };
    },
  });
  return { definition, runs, open };
}

async function startWorker(registry: JobRegistry, url: string, log: pino.Logger = quietLog): Promise<BossWorker> {
  const workerPool = testPool(url);
  const boss = await startBoss({ databaseUrl: url, log: quietLog, role: 'worker' });
  const worker = new BossWorker({ boss, pool: workerPool, registry, log, pollingIntervalSeconds: 0.5 });
  await worker.start();
  cleanups.push(() => workerPool.end(), () => worker.stop(5000));
  return worker;
}

describe('a pg-boss success committed through a database outage', () => {
  it('is committed when the database is back and runs once, as on the legacy runner', async () => {
    const job = gatedType('faults.outage', 2);
    const registry = createRegistry([job.definition]);
    producer = await startProducer(fixture.database.url, pool, registry);
    await setPercent(pool, 100);
    proxy = await startCuttableProxy(fixture.database.url);
    const { log, messages } = recordingLog();
    const worker = await startWorker(registry, proxy.url, log);
    const { id } = await producer.manager.enqueue('faults.outage', {});
    await pollUntil('the handler to start', async () => job.runs.length === 1);

    // The side effect is done; the database goes away before the commit and is back later.
    await proxy.cut();
    job.open();
    await pollUntil('the commit to fail', async () => messages.some((message) => message.includes('could not commit the outcome of a job')));
    await proxy.restore();

    await pollUntil('the job to be completed on both sides', async () => (await bossState(pool, 'faults.outage', id))?.state === 'completed' && (await jobRows(pool, '"pgbossJobId" = $1', [id]))[0]?.status === 'COMPLETED', { timeoutMs: 20_000 });
    expect(job.runs).toEqual([1]);
    const stats = await worker.stop(5000);
    expect(stats).toMatchObject({ completed: 1, claimsLost: 0 });
  });
});

describe('a failure right after a fetch, before the job ran', () => {
  it('gives the batch back unrun: a job with no retries is not dead-lettered for it, and runs once', async () => {
    const job = gatedType('faults.start', 0);
    job.open();
    const registry = createRegistry([job.definition]);
    producer = await startProducer(fixture.database.url, pool, registry);
    await setPercent(pool, 100);
    // Marking the batch started fails five times in a row, as a lock timeout would; a sequence
    // counts, since it is not rolled back with the failed statement.
    await pool.query(`CREATE SEQUENCE start_faults`);
    await pool.query(`CREATE FUNCTION refuse_start() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.status = 'RUNNING' AND nextval('start_faults') <= 5 THEN
          RAISE EXCEPTION 'canceling statement due to lock timeout' USING ERRCODE = '55P03';
        END IF;
        RETURN NEW;
      END $$`);
    await pool.query(`CREATE TRIGGER refuse_start BEFORE UPDATE ON "Job" FOR EACH ROW EXECUTE FUNCTION refuse_start()`);
    const { log, messages } = recordingLog();
    await startWorker(registry, fixture.database.url, log);
    const { id } = await producer.manager.enqueue('faults.start', {});

    await pollUntil('the job to complete', async () => (await bossState(pool, 'faults.start', id))?.state === 'completed' || (await bossState(pool, 'faults.start', id))?.state === 'failed', { timeoutMs: 20_000 });
    expect(await bossState(pool, 'faults.start', id)).toMatchObject({ state: 'completed' });
    expect(job.runs).toHaveLength(1);
    expect(messages.some((message) => message.includes('gave it back to its queue unrun'))).toBe(true);
    expect((await jobRows(pool, '"pgbossJobId" = $1', [id]))[0]).toMatchObject({ status: 'COMPLETED' });
    const { rows } = await pool.query(`SELECT 1 FROM pgboss.job WHERE name = 'faults.start' AND state = 'failed'`);
    expect(rows).toHaveLength(0);
  });
});
