// Issue 22: what the operator's terminal shows must be what is true.
import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { changeFlag } from '../../src/rollout/flags.js';
import type { TestDatabase } from '../helpers/database.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { runCli } from '../helpers/cli.js';

const fixture = useEngineFixture({});
let database: TestDatabase;
let pool: Pool;
beforeEach(() => ({ database, pool } = fixture));

describe('rollout history', () => {
  it('returns the newest events first, past the ninth (ids compared as numbers, not text)', async () => {
    for (let percent = 1; percent <= 12; percent += 1) {
      await changeFlag(pool, { jobType: '*', basisPoints: percent * 100 }, { actor: 'test', action: 'flag.set' });
    }
    const result = await runCli(['rollout', 'history', '--limit', '3', '--json', '--database-url', database.url]);
    expect(result.code, result.stderr).toBe(0);
    const events = JSON.parse(result.stdout).events as { after: { basisPoints: number } }[];
    expect(events.map((event) => event.after.basisPoints)).toEqual([1200, 1100, 1000]);
  });
});

describe('rollout get and unset', () => {
  const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli([...args, '--database-url', database.url], { env });

  it("shows when the * kill switch or an environment override beats a type's own flag", async () => {
    expect((await cli(['rollout', 'set', '50', '--type', 'evaluation.process'])).code).toBe(0);
    expect((await cli(['rollout', 'kill'])).code).toBe(0);
    const shown = await cli(['rollout', 'get']);
    expect(shown.stdout).toMatch(/evaluation\.process: 50% to pg-boss — overridden: the \* kill switch is on/);
    const overridden = await cli(['rollout', 'get'], { PGBOSS_ROLLOUT_PERCENTAGE: '20' });
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
