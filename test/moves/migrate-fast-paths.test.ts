// migrateBacklog's faster paths keep what the slow ones guaranteed: the generic table is read
// by its mapper's own columns, the quarantine is still honoured when it is asked about once
// per batch, two lanes never overshoot --limit, and a due row's past is not carried into
// pg-boss's retention.
import { beforeEach, describe, expect, it } from 'vitest';
import type { Pool } from '../../src/db/pool.js';
import { migrateBacklog, type MigrateOptions } from '../../src/moves/migrate.js';
import { backlogColumns } from '../../src/moves/migrate.sql.js';
import { genericAdapter } from '../../src/table/adapter.js';
import { GENERIC_TABLE } from '../../src/table/table.js';
import type { TestDatabase } from '../helpers/database.js';
import { quietLog, type Producer } from '../helpers/engines.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { addLegacyJobs, countWhere } from '../helpers/jobs.js';
import type { JobRegistry } from '../../src/jobs/registry.js';

const fixture = useEngineFixture({});
let database: TestDatabase;
let pool: Pool;
let producer: Producer;
let registry: JobRegistry;
beforeEach(() => ({ database, pool, producer, registry } = fixture));

const migrate = (options: Partial<MigrateOptions> = {}) =>
  migrateBacklog({ pool, databaseUrl: database.url, boss: producer.boss, registry, log: quietLog, actor: 'test', ...options });

describe('migrate, fast paths', () => {
  it("reads the generic table by the columns the generic adapter's toJob reads, and nothing it needs is missing", () => {
    const columns = backlogColumns(GENERIC_TABLE);
    expect(columns).not.toBeNull();
    const read = new Set<string>();
    const row = new Proxy({ id: 'x', type: 't', payload: {}, priority: 0 } as Record<string, unknown>, {
      get(target, key) {
        if (typeof key === 'string') read.add(key);
        return target[key as string];
      },
    });
    genericAdapter.toJob(row);
    expect([...read].filter((key) => !columns!.includes(key))).toEqual([]);
    // Any other adapter's toJob is promised the whole row.
    expect(backlogColumns({ ...GENERIC_TABLE, adapter: { ...genericAdapter } })).toBeNull();
  });

  it('moves exactly --limit rows with two lanes, even when the limit is within one batch', async () => {
    await addLegacyJobs(pool, 'test.noop', Array.from({ length: 3000 }, () => ({})));
    expect((await migrate({ limit: 1000, batchSize: 1000, concurrency: 2 })).moved).toBe(1000);
    expect(await countWhere(pool, `engine = 'PGBOSS'`)).toBe(1000);
    const second = await migrate({ limit: 1500, batchSize: 1000, concurrency: 2 });
    expect(second).toMatchObject({ moved: 1500, skipped: 500 });
    expect(await countWhere(pool, `engine = 'PGBOSS'`)).toBe(2500);
  });

  it('does not offer a quarantined row again, and moves the rows behind it', async () => {
    const [invalid] = await addLegacyJobs(pool, 'test.record', [{ tag: 42 }], { priority: 5 });
    expect(await migrate({ concurrency: 2, batchSize: 10 })).toMatchObject({ moved: 0, quarantined: 1 });
    await addLegacyJobs(pool, 'test.record', Array.from({ length: 50 }, (_, i) => ({ tag: `r${i}` })));
    // The quarantine is not empty now: each row is checked against it.
    expect(await migrate({ concurrency: 2, batchSize: 10 })).toMatchObject({ moved: 50, quarantined: 0 });
    expect(await migrate({ concurrency: 2, batchSize: 10 })).toMatchObject({ moved: 0, quarantined: 0 });
    expect(await countWhere(pool, `id = $1 AND engine = 'LEGACY' AND status = 'PENDING'`, [invalid])).toBe(1);
  });

  it("keeps a row that waited past pg-boss's retention alive on pg-boss, and a scheduled row's time", async () => {
    const [old] = await addLegacyJobs(pool, 'test.noop', [{}]);
    const [scheduled] = await addLegacyJobs(pool, 'test.noop', [{}]);
    await pool.query(`UPDATE "Job" SET "runAfter" = now() - interval '20 days', "createdAt" = (now() AT TIME ZONE 'UTC') - interval '20 days' WHERE id = $1`, [old]);
    const { rows } = await pool.query<{ runAfter: Date }>(`UPDATE "Job" SET "runAfter" = date_trunc('milliseconds', now()) + interval '1 day' WHERE id = $1 RETURNING "runAfter"`, [scheduled]);
    expect((await migrate()).moved).toBe(2);

    // pg-boss's maintenance deletes a created job whose keep_until (start_after + retention) has passed.
    await producer.boss.supervise('test.noop');
    const jobs = await pool.query<{ id: string; start_after: Date; keep_until: Date }>(`SELECT id, start_after, keep_until FROM pgboss.job WHERE name = 'test.noop' ORDER BY start_after`);
    expect(jobs.rows.map((job) => job.id)).toEqual([old, scheduled]);
    expect(jobs.rows[0]!.keep_until.getTime()).toBeGreaterThan(Date.now());
    expect(jobs.rows[1]!.start_after).toEqual(rows[0]!.runAfter);
  });
});
