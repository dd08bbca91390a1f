// What `reconcile --fix` reads before it writes: a pg-boss priority decoded back to the legacy
// scale it came from, and the kill switch as it is when each job is repaired, not as it was
// when the fix started.
import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { pgbossPriority } from '../../src/table/priority.js';
import type { TestDatabase } from '../helpers/database.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { bossState, type Producer } from '../helpers/engines.js';
import { fixtureRegistry, jobRows } from '../helpers/jobs.js';
import { runCli } from '../helpers/cli.js';
import { pollUntil } from '../helpers/wait.js';

const fixture = useEngineFixture({ percent: 100 });
let database: TestDatabase;
let pool: Pool;
let producer: Producer;
beforeEach(() => ({ database, pool, producer } = fixture));

function reconcileFix() {
  return runCli(['reconcile', '--fix', '--grace', '0', '--json', '--registry', fixtureRegistry, '--database-url', database.url]);
}

describe('reconcile --fix reads what it acts on', () => {
  it('adopts an orphan of negative priority with the legacy priority it was mapped from', async () => {
    const id = await producer.boss.send('test.noop', { from: 'elsewhere' }, { priority: pgbossPriority(-1, 3600) });
    expect(pgbossPriority(-1, 3600)).toBeLessThan(0);
    const fixed = await reconcileFix();
    expect(fixed.code, fixed.stderr).toBe(0);
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ routeReason: 'adopted', priority: -1 });
  });

  it('hands a lost job back to legacy when the kill switch went on while the fix was running', async () => {
    const { id } = await producer.manager.enqueue('test.noop', {});
    await producer.boss.deleteJob('test.noop', id);
    // Hold the row, so the fix has started (found the job lost) but waits to repair it.
    const holder = await pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM "Job" WHERE id = $1 FOR UPDATE`, [id]);
      const fix = reconcileFix();
      await pollUntil('the fix to wait on the held row', async () => {
        const { rows } = await pool.query(`SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%FOR UPDATE%' AND pid <> pg_backend_pid()`);
        return rows.length > 0;
      });
      const killed = await runCli(['rollout', 'kill', '--type', 'test.noop', '--registry', fixtureRegistry, '--database-url', database.url]);
      expect(killed.code, killed.stderr).toBe(0);
      await holder.query('COMMIT');
      const fixed = await fix;
      expect(fixed.code, fixed.stderr).toBe(0);
    } finally {
      holder.release();
    }
    expect((await jobRows(pool, 'id = $1', [id]))[0]).toMatchObject({ engine: 'LEGACY', status: 'PENDING', routeReason: 'rolledback' });
    expect(await bossState(pool, 'test.noop', id)).toBeUndefined();
  });
});
