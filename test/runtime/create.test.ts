import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Pool } from '../../src/db/pool.js';
import { defineJob } from '../../src/jobs/define.js';
import { createRegistry, type JobRegistry } from '../../src/jobs/registry.js';
import type { RuntimeContext } from '../../src/runtime/context.js';
import { createCutover } from '../../src/runtime/create.js';
import { runWorker } from '../../src/runtime/worker.js';
import { loadConfig } from '../../src/support/env.js';
import { UsageError } from '../../src/support/errors.js';
import type { TestDatabase } from '../helpers/database.js';
import { quietLog, setPercent } from '../helpers/engines.js';
import { useDatabaseFixture } from '../helpers/fixture.js';
import { repoRoot } from '../helpers/cli.js';
import { fixtureRegistry, jobRows } from '../helpers/jobs.js';
import { pollUntil } from '../helpers/wait.js';

const fixture = useDatabaseFixture();
let database: TestDatabase;
let pool: Pool;
let registry: JobRegistry;
beforeEach(() => ({ database, pool, registry } = fixture));

/**
 * Connections to this test's database other than the test's own pool (cutover-test) and the
 * pooler probe createPool starts once per URL and process, which closes on its own.
 */
async function otherConnections(): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(
    `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name NOT IN ('cutover-test', 'cutover-pooler-probe') AND pid <> pg_backend_pid()`,
  );
  return Number(rows[0]?.n);
}

/** The process's open TCP sockets: every pool's connections, pg-boss's and the flag listener's included. */
function openSockets(): number {
  return process.getActiveResourcesInfo().filter((resource) => resource === 'TCPSocketWrap').length;
}

async function deliveries(): Promise<string[]> {
  const { rows } = await pool.query<{ engine: string }>(`SELECT engine FROM "DemoDelivery" ORDER BY engine`);
  return rows.map((row) => row.engine);
}

describe('createCutover', () => {
  it('enqueues at 0 % and 100 % from one call, its workers run both jobs, and close() leaves nothing open', async () => {
    const socketsBefore = openSockets();
    expect(await otherConnections()).toBe(0);
    await setPercent(pool, 0);
    const cutover = await createCutover({ databaseUrl: database.url, config: { registry: fixtureRegistry }, log: quietLog, env: {} });
    try {
      expect(cutover.registry.names()).toEqual(registry.names());
      const legacy = await cutover.enqueue('test.record', { tag: 'legacy' });
      expect(legacy).toMatchObject({ engine: 'LEGACY', reason: 'bucket' });

      await setPercent(pool, 100);
      await pollUntil('the flag cache to hear of 100 %', async () => (await cutover.flags.get('test.record')).defaultFlag?.basisPoints === 10_000);
      const [pgboss] = await cutover.enqueueMany('test.record', [{ payload: { tag: 'pgboss' } }]);
      expect(pgboss).toMatchObject({ engine: 'PGBOSS', reason: 'bucket' });

      const legacyWorker = cutover.worker({ engine: 'legacy', pollMs: 50 });
      const bossWorker = cutover.worker({ engine: 'pgboss' });
      await pollUntil('both jobs to complete', async () => (await jobRows(pool, `status = 'COMPLETED'`)).length === 2);
      expect(await deliveries()).toEqual(['LEGACY:legacy', 'PGBOSS:pgboss']);
      expect(await legacyWorker.stop()).toMatchObject({ engine: 'legacy', completed: 1 });
      // The pg-boss worker is left running: close() stops it.
      void bossWorker;
    } finally {
      await cutover.close();
    }
    // Well within node-postgres's 10 s idle timeout, which would close a leaked pool's connections anyway.
    const closed = { timeoutMs: 5000 };
    await pollUntil('every connection createCutover and its workers opened to close', async () => (await otherConnections()) === 0, closed);
    await pollUntil('the process to hold no more sockets than before', async () => openSockets() <= socketsBefore, closed);
  });

  it('leaves a pool it was given open, runs a registry given without a module on pg-boss in process, and refuses in one line what a job process would have to load', async () => {
    // Handlers that only the test's own process can see: a job that ran in a child, or from a reloaded module, would not record here.
    const ran: string[] = [];
    const inMemory = defineJob({ name: 'given.record', schema: z.object({ tag: z.string() }), retry: { limit: 0 }, async handler(payload) { ran.push(payload.tag); return { tag: payload.tag }; } });
    const isolated = defineJob({ name: 'given.isolated', schema: z.object({}), retry: { limit: 0 }, isolation: 'process', async handler() { return { ok: true }; } });
    const given = createRegistry([inMemory, isolated]);
    await setPercent(pool, 100);
    const cutover = await createCutover({ pool, registry: given, log: quietLog, env: {} });
    try {
      expect(cutover.pool).toBe(pool);
      const oneLine = /^[^\n]*createRegistry\(jobs, module\)[^\n]*$/;
      expect(() => cutover.worker({ engine: 'legacy' })).toThrow(UsageError);
      expect(() => cutover.worker({ engine: 'legacy' })).toThrow(oneLine);
      expect(() => cutover.worker({ engine: 'pgboss' })).toThrow(/^job type given\.isolated asks for isolation: 'process'/);
      expect(() => cutover.worker({ engine: 'pgboss' })).toThrow(oneLine);

      expect(await cutover.enqueue('given.record', { tag: 'in-process' })).toMatchObject({ engine: 'PGBOSS' });
      const worker = cutover.worker({ engine: 'pgboss', types: ['given.record'] });
      await pollUntil('the job to complete', async () => (await jobRows(pool, `type = 'given.record' AND status = 'COMPLETED'`)).length === 1);
      expect(ran).toEqual(['in-process']);
      expect(await worker.stop()).toMatchObject({ engine: 'pgboss', completed: 1 });
    } finally {
      await cutover.close();
    }
    expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    await pollUntil('pg-boss and the flag listener to disconnect', async () => (await otherConnections()) === 0, { timeoutMs: 5000 });
  });

  it('runWorker refuses the legacy engine over a registry given without a module, at start and in one line', async () => {
    const context: RuntimeContext = {
      config: loadConfig({ env: {}, databaseUrl: database.url }),
      project: { file: undefined, legacy: undefined, registry: undefined, migrationsDir: join(repoRoot, 'prisma', 'migrations') },
      log: quietLog,
      db: { url: database.url, embedded: false, close: async () => undefined },
      signal: new AbortController().signal,
      command: 'worker',
    };
    const given = createRegistry([registry.require('test.noop')]);
    await expect(runWorker(context, { engine: 'legacy', registry: given, shutdownTimeout: 1, superviseInterval: 1 })).rejects.toThrow(
      /^the legacy engine runs each job in a process that loads the job registry by its module[^\n]*createRegistry\(jobs, module\)[^\n]*$/,
    );
    expect(await otherConnections()).toBe(0);
  });

  it('reads cutover.config from the working directory, as the CLI does', async () => {
    const project = join(repoRoot, '.test-tmp', `create-${randomBytes(4).toString('hex')}`);
    await mkdir(project, { recursive: true });
    try {
      await writeFile(join(project, 'cutover.config.mjs'), `export default { registry: ${JSON.stringify(fixtureRegistry)} };\n`);
      const cutover = await createCutover({ databaseUrl: database.url, cwd: project, log: quietLog, env: {} });
      try {
        expect(cutover.project.file).toBe(join(project, 'cutover.config.mjs'));
        expect(cutover.registry.module).toBe(fixtureRegistry);
        expect(await cutover.enqueue('test.noop', {})).toMatchObject({ engine: 'LEGACY' });
      } finally {
        await cutover.close();
      }
    } finally {
      await rm(project, { recursive: true, force: true });
    }
  });
});
