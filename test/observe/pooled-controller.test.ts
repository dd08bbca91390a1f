// A plan controller behind a transaction pooler without DIRECT_URL holds a lease row, not a
// session advisory lock (state/leases.ts): the read model must find it there too, or `cutover
// status`, `plan status` and the dashboard say "no controller attached" about a plan that moves.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadRegistry, type JobRegistry } from '../../src/jobs/registry.js';
import { runPlan, type PlanContext } from '../../src/plans/plan-runner.js';
import { planSchema } from '../../src/plans/plan.js';
import { readState } from '../../src/observe/state.js';
import { getStatus } from '../../src/observe/status.js';
import { Snapshots } from '../../src/dashboard/snapshot.js';
import { GENERIC_TABLE } from '../../src/table/table.js';
import { quietLog } from '../helpers/engines.js';
import { fixtureRegistry } from '../helpers/jobs.js';
import { runCliInProcess } from '../helpers/cli.js';
import { usePooledDatabase } from '../helpers/fixture.js';
import { pollUntil } from '../helpers/wait.js';

const pooled = usePooledDatabase();
let registry: JobRegistry;
beforeAll(async () => {
  registry = await loadRegistry(fixtureRegistry);
});

const soak = planSchema.parse({ name: 'soak', jobType: 'test.noop', steps: [{ setWeight: 10 }, { pause: { duration: '1h' } }, { setWeight: 20 }] });
const stops: AbortController[] = [];
const running: Promise<unknown>[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) stop.abort();
  await Promise.all(running.splice(0));
  await pooled.direct.query(`UPDATE "RolloutPlanRun" SET state = 'aborted', "finishedAt" = now() WHERE state IN ('running', 'paused')`);
});

/** A controller driving `soak` on `url`, once it sits on the pause step. */
async function controllerOn(url: string): Promise<void> {
  const context: PlanContext = { pool: pooled.direct, databaseUrl: url, registry, log: quietLog, actor: 'test' };
  const stop = new AbortController();
  stops.push(stop);
  running.push(runPlan(context, soak, { tickMs: 50, signal: stop.signal }));
  await pollUntil('the pause step', async () => (await pooled.direct.query(`SELECT "currentStep" FROM "RolloutPlanRun" WHERE state = 'running'`)).rows[0]?.currentStep === 1);
}

describe('a plan controller as status and the dashboard see it', () => {
  it('behind PgBouncer without DIRECT_URL: held by a lease, shown as attached', async () => {
    await controllerOn(pooled.pooledUrl);
    const { rows } = await pooled.direct.query<{ holder: string }>(`SELECT holder FROM "CutoverLease"`);
    expect(rows).toHaveLength(1);

    const state = await readState(pooled.direct, GENERIC_TABLE, { parts: ['plans'], types: registry.names() });
    expect(state.plans).toHaveLength(1);
    expect(state.plans[0]!.controller).toMatchObject({ kind: 'lease', pid: process.pid, application: 'cutover-plan', holder: rows[0]!.holder });
    expect(state.plans[0]!.controller?.since).toEqual(expect.any(String));

    const status = await getStatus(pooled.direct, GENERIC_TABLE, registry.names());
    expect(status.plans[0]!.controller).toMatchObject({ kind: 'lease', pid: process.pid });

    // The CLI's own reads go through the pooler, as an operator's would.
    const env = { DATABASE_URL: pooled.pooledUrl };
    const text = await runCliInProcess(['status', '--registry', fixtureRegistry], { env });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/Active plans:\n {2}.*soak/);
    expect(text.stdout).not.toMatch(/no controller attached/);
    const planStatus = await runCliInProcess(['plan', 'status', '--json', '--registry', fixtureRegistry], { env });
    expect(planStatus.code, planStatus.stderr).toBe(0);
    expect(JSON.parse(planStatus.stdout).runs[0].controller).toMatchObject({ kind: 'lease', pid: process.pid });
    const planText = await runCliInProcess(['plan', 'status', '--registry', fixtureRegistry], { env });
    expect(planText.stdout).toContain(`controller: attached (lease held by ${rows[0]!.holder}, taken `);

    const snapshots = new Snapshots({ pool: pooled.direct, databaseUrl: pooled.pooledUrl, registry, table: GENERIC_TABLE, log: quietLog, env: {} }, 0);
    expect((await snapshots.get()).plans.map((plan) => plan.controlled)).toEqual([true]);
  });

  it('an expired lease (a controller killed with -9) is no controller', async () => {
    await controllerOn(pooled.pooledUrl);
    // A controller killed with -9 stops renewing: its lease runs out and it is shown as gone.
    await pooled.direct.query(`UPDATE "CutoverLease" SET "expiresAt" = now() - interval '1 second'`);
    const state = await readState(pooled.direct, GENERIC_TABLE, { parts: ['plans'], types: registry.names() });
    expect(state.plans[0]!.controller).toBeNull();
  });

  it('on a session (DIRECT_URL): held by a session lock, shown as attached', async () => {
    await controllerOn(pooled.database.url);
    const state = await readState(pooled.direct, GENERIC_TABLE, { parts: ['plans'], types: registry.names() });
    expect(state.plans[0]!.controller).toMatchObject({ kind: 'session', application: 'cutover-plan', holder: null });
    expect(state.plans[0]!.controller?.pid).not.toBe(process.pid);
  });
});
