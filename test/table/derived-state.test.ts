// The adapter of a table with no status column, checked against a catalog as every command
// checks it: what it must name, the status column cutover adds for itself, and the state SQL
// the backfill and the trigger share.
import { describe, expect, it } from 'vitest';
import type { LegacyAdapter } from '../../src/table/adapter.js';
import { derivedStatusSql, describeTable, type CatalogColumn } from '../../src/table/table.js';

const column = (name: string, type = 'text'): CatalogColumn => ({ name, type, labels: null, generated: false });
const catalog = ['id', 'name', 'payload', 'attempts', 'maxAttempts', 'scheduledAt', 'succeededAt', 'lastError', 'lastFailedAttemptAt', 'createdAt', 'locked_at', 'failed_at'].map((name) =>
  column(name, /attempts/i.test(name) ? 'integer' : 'text'),
);
const base: LegacyAdapter = {
  table: 'BackgroundJob',
  jobType: { column: 'name' },
  state: 'derived',
  retries: 'same-row',
  columns: { attempts: 'attempts', maxAttempts: 'maxAttempts', completedAt: 'succeededAt', error: 'lastError', runAt: 'scheduledAt' },
  toJob: () => ({ type: 'x', payload: {} }),
  toRow: () => ({}),
};
const describe_ = (adapter: LegacyAdapter) => describeTable(adapter, catalog, { requireCutoverColumns: false });

describe('an adapter with derived state', () => {
  it('gets a status column of cutover’s own, added by init with a default, and a finish column that means success', () => {
    const table = describe_(base);
    expect(table.names.status).toBe('cutoverStatus');
    expect(table.missing.get('cutoverStatus')).toBe(`TEXT NOT NULL DEFAULT 'PENDING'`);
    expect(table.completedOnFailure).toBe(false);
    expect(derivedStatusSql(table, 'NEW')).toBe(
      `CASE WHEN NEW."succeededAt" IS NOT NULL THEN 'COMPLETED' WHEN NEW."attempts" >= NEW."maxAttempts" THEN 'FAILED' ELSE 'PENDING' END`,
    );
  });

  it('reads a start column of the team’s own as held, and a failure time for good as failed', () => {
    const table = describe_({ ...base, onSuccess: 'archive', failedAtMeans: 'failed-for-good', columns: { attempts: 'attempts', startedAt: 'locked_at', failedAt: 'failed_at' } });
    expect(derivedStatusSql(table, 'j')).toBe(`CASE WHEN j."completedAt" IS NOT NULL THEN 'COMPLETED' WHEN j."failed_at" IS NOT NULL THEN 'FAILED' WHEN j."locked_at" IS NOT NULL THEN 'RUNNING' ELSE 'PENDING' END`);
  });

  it('refuses what it cannot derive a state from, naming the field', () => {
    expect(() => describe_({ ...base, columns: { attempts: 'attempts', maxAttempts: 'maxAttempts' } })).toThrow(/legacy\.columns\.completedAt: .*onSuccess: 'archive'/);
    expect(() => describe_({ ...base, columns: { completedAt: 'succeededAt', attempts: 'attempts' } })).toThrow(/legacy\.columns\.maxAttempts: .*failedAtMeans: 'failed-for-good'/);
    expect(() => describe_({ ...base, completedAtMeans: 'finished' })).toThrow(/legacy\.completedAtMeans/);
  });

  it('a table with a status column keeps it, and derives nothing', () => {
    const table = describeTable({ ...base, state: 'status', columns: { ...base.columns, status: 'name' } }, catalog, { requireCutoverColumns: false });
    expect(table.names.status).toBe('name');
    expect(derivedStatusSql(table, 'j')).toBeNull();
    expect(table.completedOnFailure).toBe(true);
  });
});
