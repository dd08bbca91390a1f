// What the operator's terminal shows must be what is true.
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { changeFlag } from '../../src/state/flags.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import type { Producer } from '../helpers/engines.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { fixtureRegistry } from '../helpers/jobs.js';
import { runCliInProcess } from '../helpers/cli.js';
import { killStragglers, startCli } from '../helpers/process.js';
import { pollUntil } from '../helpers/wait.js';

const fixture = useEngineFixture({});
let database: TestDatabase;
let pool: Pool;
let producer: Producer;
beforeEach(() => ({ database, pool, producer } = fixture));
afterEach(killStragglers);

const cli = (args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}) => runCliInProcess([...args, '--database-url', database.url], options);

let scratch: string | undefined;
afterEach(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
  scratch = undefined;
});

/** A plan file in a scratch rollout/ folder, as a team keeps them. */
async function planFile(name: string, text: string): Promise<string> {
  scratch ??= await mkdtemp(join(tmpdir(), 'cutover-plans-'));
  await mkdir(join(scratch, 'rollout'), { recursive: true });
  const file = join(scratch, 'rollout', name);
  await writeFile(file, text);
  return file;
}

describe('rollout history', () => {
  it('returns the newest events first, past the ninth (ids compared as numbers, not text)', async () => {
    for (let percent = 1; percent <= 12; percent += 1) {
      await changeFlag(pool, { jobType: '*', basisPoints: percent * 100 }, { actor: 'test', action: 'flag.set' });
    }
    const result = await runCliInProcess(['rollout', 'history', '--limit', '3', '--json', '--database-url', database.url]);
    expect(result.code, result.stderr).toBe(0);
    const events = JSON.parse(result.stdout).events as { after: { basisPoints: number } }[];
    expect(events.map((event) => event.after.basisPoints)).toEqual([1200, 1100, 1000]);
  });
});

describe('rollout get and unset', () => {
  it("shows when the * kill switch or an environment override beats a type's own flag", async () => {
    expect((await cli(['rollout', 'set', '50', '--type', 'evaluation.process'])).code).toBe(0);
    expect((await cli(['rollout', 'kill'])).code).toBe(0);
    const shown = await cli(['rollout', 'get']);
    expect(shown.stdout).toMatch(/evaluation\.process: 50% to pg-boss — overridden: the \* kill switch is on/);
    const overridden = await cli(['rollout', 'get'], { env: { PGBOSS_ROLLOUT_PERCENTAGE: '20' } });
    expect(overridden.stdout).toMatch(/environment override: PGBOSS_ROLLOUT_PERCENTAGE=20/);
  });

  it("removes a type's own flag, audited, and refuses to remove *", async () => {
    expect((await cli(['rollout', 'set', '50', '--type', 'evaluation.process'])).code).toBe(0);
    const removed = await cli(['rollout', 'unset', '--type', 'evaluation.process', '--json']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(JSON.parse(removed.stdout).removed).toMatchObject({ jobType: 'evaluation.process', basisPoints: 5000 });
    expect((await pool.query(`SELECT 1 FROM "RolloutFlag" WHERE "jobType" = 'evaluation.process'`)).rowCount).toBe(0);
    expect((await pool.query(`SELECT 1 FROM "RolloutEvent" WHERE action = 'flag.unset'`)).rowCount).toBe(1);
    expect((await cli(['rollout', 'unset', '--type', 'evaluation.process'])).stdout).toMatch(/has no flag of its own/);
    const refused = await cli(['rollout', 'unset']);
    expect(refused.code).toBe(2);
    expect(refused.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('rollout history in columns', () => {
  it('prints percentages, who, what and why in words, one short line per event; --json keeps the documents', async () => {
    await changeFlag(pool, { jobType: '*', basisPoints: 500 }, { actor: 'ana', action: 'flag.set', reason: 'first step' });
    await changeFlag(pool, { jobType: '*', basisPoints: 1000 }, { actor: 'ana', action: 'flag.set', reason: 'soak was clean' });
    await changeFlag(pool, { jobType: '*', killSwitch: true }, { actor: 'bo', action: 'flag.kill', reason: 'paging' });
    const shown = await cli(['rollout', 'history']);
    expect(shown.code, shown.stderr).toBe(0);
    const lines = shown.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^when \(UTC\)\s+who\s+action\s+type\s+change\s+why$/);
    expect(lines[1]).toMatch(/bo\s+flag\.kill\s+\*\s+kill switch ON\s+paging$/);
    expect(lines[2]).toMatch(/ana\s+flag\.set\s+\*\s+5 % → 10 %\s+soak was clean$/);
    expect(lines[3]).toMatch(/ana\s+flag\.set\s+\*\s+5 % \(new flag\)\s+first step$/);
    expect(shown.stdout).not.toMatch(/basisPoints|[{}]/);
    for (const line of lines) expect(line.length).toBeLessThan(160);
    const json = JSON.parse((await cli(['rollout', 'history', '--json'])).stdout) as { events: { after: { basisPoints: number } }[] };
    expect(json.events[1]!.after.basisPoints).toBe(1000);
  });
});

describe('one duration rule', () => {
  it('reads a bare number as seconds on the command line as in plan files, and prints durations exactly', async () => {
    const bare = await cli(['reconcile', '--since', '90', '--json']);
    expect(JSON.parse(bare.stdout).window.sinceSeconds, bare.stderr).toBe(90);
    const words = await cli(['reconcile', '--since', '90m']);
    expect(words.stdout).toContain('jobs created in the last 1 hour 30 minutes');
    const help = await runCliInProcess(['reconcile', '--help']);
    expect(help.stdout.replace(/\s+/g, ' ')).toMatch(/--since <duration> .*a bare number is seconds \(default: 24h\)/);
    const wrong = await cli(['reconcile', '--since', 'soon']);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/a bare number is seconds, got 'soon'/);
    const plan = await planFile('soak.yaml', 'name: soak\nsteps:\n  - pause: { duration: 90 }\n  - pause: { duration: 90m }\n');
    const shown = await runCliInProcess(['plan', 'show', plan]);
    expect(shown.stdout).toContain('1. soak for 1 minute 30 seconds');
    expect(shown.stdout).toContain('2. soak for 1 hour 30 minutes');
  });
});

describe('status', () => {
  it('shows where new jobs of each type go when the * kill switch beats a type flag, and the active plans', async () => {
    expect((await cli(['rollout', 'set', '50', '--type', 'evaluation.process'])).code).toBe(0);
    expect((await cli(['rollout', 'set', '30'])).code).toBe(0);
    const before = await cli(['status']);
    expect(before.stdout).toMatch(/evaluation\.process\s+50%\s+its own flag/);
    expect(before.stdout).toMatch(/notification\.send\s+30%\s+the \* flag/);
    const plan = await planFile('ramp.yaml', 'name: ramp\njobType: evaluation.process\nsteps:\n  - pause: {}\n  - setWeight: 100\n');
    expect((await cli(['plan', 'start', plan, '--skip-preflight'])).code).toBe(0);
    expect((await cli(['rollout', 'kill'])).code).toBe(0);

    const shown = await cli(['status']);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/evaluation\.process\s+0%\s+kill switch on \*/);
    expect(shown.stdout).toMatch(/Active plans:\n {2}ramp \(evaluation\.process\) running, step 1\/2: pause until advanced by hand \(no controller attached/);
    const overridden = await cli(['status'], { env: { USE_PGBOSS: 'false' } });
    expect(overridden.stdout).toMatch(/evaluation\.process\s+0%\s+kill switch on \*/);
    expect((await cli(['rollout', 'unkill'])).code).toBe(0);
    const environment = await cli(['status', '--json'], { env: { PGBOSS_ROLLOUT_PERCENTAGE: '20' } });
    const report = JSON.parse(environment.stdout) as { routes: { jobType: string; percent: number; decidedBy: string }[]; plans: { planName: string; controller: unknown }[] };
    expect(report.routes.find((route) => route.jobType === 'evaluation.process')).toEqual({ jobType: 'evaluation.process', percent: 20, decidedBy: 'environment: PGBOSS_ROLLOUT_PERCENTAGE=20' });
    expect(report.plans).toMatchObject([{ planName: 'ramp', controller: null }]);
  });

  it('says so when pg-boss is not installed in the database yet, instead of an empty queue list', async () => {
    const bare = await createTestDatabase();
    try {
      const shown = await runCliInProcess(['status', '--database-url', bare.url]);
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toContain('pg-boss is not installed in this database yet');
      expect(JSON.parse((await runCliInProcess(['status', '--json', '--database-url', bare.url])).stdout).pgbossInstalled).toBe(false);
    } finally {
      await bare.drop();
    }
  });
});

describe('plans on the terminal', () => {
  const analysisPlan = 'name: gated\njobType: test.noop\nsteps:\n  - setWeight: 10\n  - analysis: { interval: 1h, count: 2, gates: { minSamples: 5 } }\n';

  it('plan status shows whether a controller is attached and the gates measured now, value next to limit', async () => {
    const plan = await planFile('gated.yaml', analysisPlan);
    const registry = ['--registry', fixtureRegistry];
    expect((await cli(['plan', 'start', plan, ...registry])).code).toBe(0);
    expect((await cli(['plan', 'advance', '--yes', ...registry])).code).toBe(0);
    const alone = await cli(['plan', 'status', ...registry]);
    expect(alone.code, alone.stderr).toBe(0);
    expect(alone.stdout).toContain('controller: none attached');
    expect(alone.stdout).toMatch(/gates now: inconclusive/);
    expect(alone.stdout).toMatch(/minSamples\s+inconclusive\s+pg-boss 0, legacy 0 finished jobs \(need 5 each\)/);

    const controller = startCli(['plan', 'run', plan, '--tick-ms', '100', ...registry, '--database-url', database.url]);
    const attached = await pollUntil('the controller to attach', async () => {
      const shown = await cli(['plan', 'status', ...registry, '--json']);
      const runs = JSON.parse(shown.stdout) as { runs: { controller?: { pid: number } | null }[] };
      return runs.runs[0]?.controller ?? undefined;
    });
    expect(attached.pid).toBeGreaterThan(0);
    expect((await cli(['plan', 'status', ...registry])).stdout).toMatch(/controller: attached \(pid \d+, cutover-plan/);
    controller.kill('SIGINT');
    await controller.exited;
  });

  it('a gate that cannot judge points at plan abort before --force, and changes nothing', async () => {
    const plan = await planFile('gated.yaml', analysisPlan.replace('interval: 1h', 'interval: 1s'));
    const registry = ['--registry', fixtureRegistry];
    expect((await cli(['plan', 'start', plan, ...registry])).code).toBe(0);
    expect((await cli(['plan', 'advance', '--yes', ...registry])).code).toBe(0);
    const refused = await cli(['plan', 'advance', '--yes', ...registry]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/the gates cannot judge yet \(minSamples: .*\): .*'cutover plan abort'.*'cutover plan advance --force'/);
    expect(refused.stderr).not.toMatch(/gates are/);
    const { rows } = await pool.query<{ currentStep: number }>(`SELECT "currentStep" FROM "RolloutPlanRun"`);
    expect(rows).toEqual([{ currentStep: 1 }]);
  });

  it('plan run prints a paused plan once, not every tick', async () => {
    const plan = await planFile('hold.yaml', 'name: hold\njobType: test.noop\nsteps:\n  - pause: {}\n  - setWeight: 100\n');
    const controller = startCli(['plan', 'run', plan, '--tick-ms', '50', '--registry', fixtureRegistry, '--database-url', database.url]);
    await pollUntil('the plan to pause', async () => controller.stdout().includes('paused:'));
    // Twenty ticks: each one used to print the same line again.
    await sleep(1000);
    controller.kill('SIGINT');
    await controller.exited;
    expect(controller.stdout().trimEnd().split('\n').filter((line) => line.includes('paused'))).toHaveLength(1);
  });

  it('plan show with no file lists the plan files in rollout/, flagging an invalid one', async () => {
    await planFile('good.yaml', 'name: good\njobType: "*"\nsteps:\n  - setWeight: 5\n');
    await planFile('bad.yaml', 'name: bad\nsteps:\n  - setWeight: 500\n');
    const listed = await runCliInProcess(['plan', 'show'], { cwd: scratch! });
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/rollout\/bad\.yaml\s+INVALID: .*steps\.0\.setWeight/);
    expect(listed.stdout).toMatch(/rollout\/good\.yaml\s+good\s+\*\s+1/);
    const empty = await runCliInProcess(['plan', 'show'], { cwd: tmpdir() });
    expect(empty.stdout).toContain('no plan files in rollout/');
  });
});

describe('reconcile on the terminal', () => {
  it('labels the verdict with what it tests, and points remaining findings at --fix', async () => {
    await pool.query(`UPDATE "RolloutFlag" SET "basisPoints" = 10000`);
    await changeFlag(pool, { jobType: '*', basisPoints: 10_000 }, { actor: 'test', action: 'flag.set' });
    const { id } = await producer.manager.enqueue('test.noop', {});
    await producer.boss.deleteJob('test.noop', id);
    const shown = await cli(['reconcile', '--grace', '0', '--registry', fixtureRegistry]);
    expect(shown.code).toBe(1);
    expect(shown.stdout).toMatch(/lost\s+1/);
    expect(shown.stdout).toContain("1 finding(s) remain: run 'cutover reconcile --fix' to repair the 1 lost, orphan or drift finding(s)");
    expect(shown.stderr).toContain("cutover reconcile --fix");
  });

  it('says what the verdict compares and on what evidence, and shows the latency ratio beside it', async () => {
    // 40 finished jobs per engine, all successful; pg-boss took 20 s from creation, legacy 10 s.
    await pool.query(
      `INSERT INTO "Job" (id, type, payload, status, attempts, engine, "createdAt", "updatedAt", "completedAt")
       SELECT gen_random_uuid(), 'test.noop', '{}', 'COMPLETED', 1, engine::"JobEngine", now() - interval '1 minute', now(),
              now() - interval '1 minute' + CASE WHEN engine = 'PGBOSS' THEN interval '20 seconds' ELSE interval '10 seconds' END
         FROM generate_series(1, 40), unnest(ARRAY['LEGACY', 'PGBOSS']) AS engine`,
    );
    const shown = await cli(['reconcile', '--registry', fixtureRegistry]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/p95 vs legacy\s+success rate vs legacy/);
    expect(shown.stdout).toMatch(/test\.noop\s+PGBOSS\s+40\s+100\.0%.*\s2\.00×\s+no significant difference \(z 0\)/);
    expect(shown.stdout).toContain('two-proportion z-test at the 5 % level');
    expect(shown.stdout).not.toMatch(/\bsame\b/);
  });
});
