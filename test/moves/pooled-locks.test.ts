// The locks of long commands behind a real transaction pooler (PgBouncer 1.18, pool_mode =
// transaction): a session advisory lock taken there stays on the pooled server connection after
// the command exits, so they must be leases without DIRECT_URL, and session locks on it with one.
import { beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { lockJobTypes } from '../../src/moves/locks.js';
import { loadRegistry, type JobRegistry } from '../../src/jobs/registry.js';
import { runPlan, type PlanContext } from '../../src/plans/plan-runner.js';
import { planSchema } from '../../src/plans/plan.js';
import { PLAN_LOCK_CLASS } from '../../src/observe/state.js';
import type { TestDatabase } from '../helpers/database.js';
import { quietLog } from '../helpers/engines.js';
import { addLegacyJobs, fixtureRegistry } from '../helpers/jobs.js';
import { runCliInProcess } from '../helpers/cli.js';
import { usePooledDatabase } from '../helpers/fixture.js';
import { pollUntil } from '../helpers/wait.js';

// The type locks' key space (moves/locks.ts), spelled out so the test reads the same lock on any version.
const TYPE_LOCK_SPACE = 'cutover.ops';

const pooled = usePooledDatabase();
let database: TestDatabase;
let direct: Pool;
let pooledUrl: string;
let registry: JobRegistry;
beforeAll(async () => {
  ({ database, direct, pooledUrl } = pooled);
  registry = await loadRegistry(fixtureRegistry);
});

const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => runCliInProcess([...args, '--registry', fixtureRegistry], { env: { DATABASE_URL: pooledUrl, ...env } });

/** Advisory locks of a key space held by any backend: what a command left behind on a server connection. */
async function advisoryLocks(space: string): Promise<number> {
  const { rows } = await direct.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND classid = hashtext($1)::oid
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    [space],
  );
  return rows[0]!.n;
}

async function leases(): Promise<number> {
  return (await direct.query<{ n: number }>(`SELECT count(*)::int AS n FROM "CutoverLease"`)).rows[0]!.n;
}

/** Rollback leaves the kill switch on; the next test starts without it. */
async function unkill(): Promise<void> {
  await direct.query(`UPDATE "RolloutFlag" SET "killSwitch" = false`);
}

describe('locks behind PgBouncer in transaction mode', () => {
  it('without DIRECT_URL: a migrate that exited holds nothing, and a rollback right after it does not wait', async () => {
    await addLegacyJobs(direct, 'test.noop', Array.from({ length: 50 }, () => ({})));
    const migrated = await cli(['migrate', '--type', 'test.noop', '--json']);
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(JSON.parse(migrated.stdout)).toMatchObject({ moved: 50 });
    expect(await advisoryLocks(TYPE_LOCK_SPACE)).toBe(0);
    expect(await leases()).toBe(0);

    const started = performance.now();
    const rolledBack = await cli(['rollback', '--type', 'test.noop', '--timeout', '5', '--yes', '--json']);
    expect(rolledBack.code, rolledBack.stderr).toBe(0);
    expect(rolledBack.stderr).not.toMatch(/waiting for a running migrate/);
    expect(performance.now() - started).toBeLessThan(4000);
    expect(JSON.parse(rolledBack.stdout)).toMatchObject({ moved: 50 });
    expect(await advisoryLocks(TYPE_LOCK_SPACE)).toBe(0);
    expect(await leases()).toBe(0);
    await unkill();
  }, 60_000);

  it('a lease keeps the other command out while held, through the pooler and through DIRECT_URL alike', async () => {
    const held = await lockJobTypes(pooledUrl, ['test.noop'], 'rollback');
    try {
      expect(held.kind).toBe('lease');
      expect(await leases()).toBe(1);
      for (const env of [{}, { DIRECT_URL: database.url }]) {
        const blocked = await cli(['migrate', '--type', 'test.noop'], env);
        expect(blocked.code, blocked.stderr).toBe(1);
        expect(blocked.stderr).toMatch(/a rollback is running for job type 'test.noop'; wait for it to finish/);
      }
    } finally {
      await held.release();
    }
    expect(await leases()).toBe(0);
    expect((await cli(['migrate', '--type', 'test.noop'])).code).toBe(0);
  }, 60_000);

  it('with DIRECT_URL, the locks are session locks on it, and a pooled command without it is kept out', async () => {
    // What `migrate` takes with DIRECT_URL given (services.lockUrl): the direct URL.
    const held = await lockJobTypes(database.url, ['test.noop'], 'migrate');
    try {
      expect(held.kind).toBe('session');
      expect(await advisoryLocks(TYPE_LOCK_SPACE)).toBe(1);
      expect(await leases()).toBe(0);
      const blocked = await cli(['rollback', '--type', 'test.noop', '--timeout', '1', '--yes']);
      expect(blocked.code, blocked.stderr).toBe(1);
      expect(blocked.stderr).toMatch(/a migrate or another rollback is running for job type 'test.noop' after waiting 1s; wait for it to finish/);
    } finally {
      await held.release();
    }
    const rolledBack = await cli(['rollback', '--type', 'test.noop', '--timeout', '5', '--yes'], { DIRECT_URL: database.url });
    expect(rolledBack.code, rolledBack.stderr).toBe(0);
    expect(await advisoryLocks(TYPE_LOCK_SPACE)).toBe(0);
    expect(await leases()).toBe(0);
    await unkill();
  }, 60_000);

  it('db migrate through the pooler leaves no lock behind, and a second one right after it runs', async () => {
    for (let run = 0; run < 2; run += 1) {
      const migrated = await runCliInProcess(['db', 'migrate', '--json'], { env: { DATABASE_URL: pooledUrl } });
      expect(migrated.code, migrated.stderr).toBe(0);
      expect(JSON.parse(migrated.stdout)).toMatchObject({ applied: [] });
      // The applier's lock is one bigint key (objsubid 1); none may stay on a pooled server connection.
      const { rows } = await direct.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      );
      expect(rows[0]!.n).toBe(0);
    }
  }, 60_000);

  it("a plan controller's lock: a second controller is refused, and none is left once it stops", async () => {
    const context = (databaseUrl: string): PlanContext => ({ pool: direct, databaseUrl, registry, log: quietLog, actor: 'test' });
    const soak = planSchema.parse({ name: 'soak', jobType: 'test.noop', steps: [{ setWeight: 10 }, { pause: { duration: '1h' } }, { setWeight: 20 }] });
    const stop = new AbortController();
    const first = runPlan(context(pooledUrl), soak, { tickMs: 50, signal: stop.signal });
    await pollUntil('the soak step', async () => (await direct.query(`SELECT "currentStep" FROM "RolloutPlanRun"`)).rows[0]?.currentStep === 1);
    expect(await leases()).toBe(1);
    await expect(runPlan(context(pooledUrl), soak, { tickMs: 50 })).rejects.toThrow(/another controller is driving a plan for test.noop/);
    await expect(runPlan(context(database.url), soak, { tickMs: 50 })).rejects.toThrow(/another controller is driving a plan for test.noop/);
    stop.abort();
    expect((await first).currentStep).toBe(1);
    expect(await leases()).toBe(0);
    expect(await advisoryLocks(PLAN_LOCK_CLASS)).toBe(0);

    // The next controller takes over at once, on either URL.
    const again = new AbortController();
    let ticks = 0;
    const second = await runPlan(context(pooledUrl), soak, { tickMs: 50, signal: again.signal, onTick: () => (ticks += 1) === 2 && again.abort() });
    expect(second.currentStep).toBe(1);
    expect(await advisoryLocks(PLAN_LOCK_CLASS)).toBe(0);
  }, 60_000);
});
