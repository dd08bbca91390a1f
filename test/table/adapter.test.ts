import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../src/config/file.js';
import type { LegacyAdapter } from '../../src/table/adapter.js';
import { describeTable, GENERIC_TABLE, toJob, toRow, type CatalogColumn } from '../../src/table/table.js';
import { adoptionSql, prismaFields } from '../../src/adopt/adopt.js';

const column = (name: string, type = 'text', labels: string[] | null = null): CatalogColumn => ({ name, type, labels, generated: false });

/** The example table's catalog, after adoption unless `adopted` is false. */
function catalog(adopted = true): CatalogColumn[] {
  const own = [
    column('id'),
    column('status', '"JobStatus"', ['PENDING', 'RUNNING', 'COMPLETED', 'FAILED']),
    column('evaluationId'),
    column('agentEvalBatchId'),
    column('logs'),
    column('attempts', 'integer'),
    column('originalJobId'),
    column('error'),
    column('createdAt', 'timestamp(3) without time zone'),
    column('updatedAt', 'timestamp(3) without time zone'),
    column('startedAt', 'timestamp(3) without time zone'),
    column('completedAt', 'timestamp(3) without time zone'),
    { ...column('seq', 'bigint'), generated: true },
  ];
  const cutover = ['engine', 'pgbossJobId', 'routeReason', 'bucket', 'workerId', 'heartbeatAt', 'runAfter'].map((name) => column(name));
  return adopted ? [...own, ...cutover] : own;
}

const adapter: LegacyAdapter = {
  schema: 'app',
  table: 'Job',
  jobType: 'evaluation.process',
  columns: { logs: 'logs' },
  toJob: (row) => ({ type: 'evaluation.process', payload: { evaluationId: row.evaluationId } }),
  toRow: (_type, payload) => ({ evaluationId: (payload as { evaluationId: string }).evaluationId }),
};

describe('binding an adapter to the catalog', () => {
  it('quotes every name and takes the id type from the catalog', () => {
    const table = describeTable(adapter, catalog());
    expect(table.ref).toBe('"app"."Job"');
    expect(table.idType).toBe('text');
    expect(table.col.originalJobId).toBe('"originalJobId"');
    expect(table.col.priority).toBeUndefined();
    expect(table.status.running).toBe("'RUNNING'");
  });

  it("copies the job's own columns into a retry row, never the run's or a generated one", () => {
    expect(describeTable(adapter, catalog()).copyOnRetry).toEqual(['evaluationId', 'agentEvalBatchId', 'routeReason', 'bucket']);
    expect(GENERIC_TABLE.copyOnRetry).toEqual(['priority', 'maxAttempts', 'type', 'payload', 'result', 'routeReason', 'bucket']);
  });

  it.each([
    [{ ...adapter, table: 'Jobs' }, [], /legacy\.table: table app\.Jobs does not exist/],
    [{ ...adapter, columns: { error: 'lastError' } }, catalog(), /legacy\.columns\.error: column "lastError" does not exist in app\.Job/],
    [{ ...adapter, jobType: { column: 'kind' } }, catalog(), /legacy\.jobType\.column: column "kind" does not exist/],
    [{ ...adapter, status: { failed: 'ERRORED' } }, catalog(), /legacy\.status\.failed: 'ERRORED' is not a value of "JobStatus"/],
    [{ ...adapter, status: { failed: 'COMPLETED' } }, catalog(), /four different values/],
    [adapter, catalog(false), /lacks cutover's columns \(engine, pgbossJobId, .*\): run `cutover init`/],
  ])('refuses a mistake with a message naming the field (%#)', (bad, columns, message) => {
    expect(() => describeTable(bad, columns)).toThrow(message);
  });

  it("reports what the adapter's functions get wrong", () => {
    const table = describeTable(
      { ...adapter, toJob: () => ({ type: '', payload: null }), toRow: () => ({ status: 'RUNNING' }) },
      catalog(),
    );
    expect(() => toJob(table, { id: 'ck1' })).toThrow(/legacy\.toJob must return \{ type, payload \}.*row ck1/);
    expect(() => toRow(table, 'evaluation.process', {})).toThrow(/legacy\.toRow returned column "status", which cutover writes itself/);
    const typo = describeTable({ ...adapter, toRow: () => ({ evaluationID: 'x' }) }, catalog());
    expect(() => toRow(typo, 'evaluation.process', {})).toThrow(/legacy\.toRow returned column "evaluationID", which does not exist in app\.Job/);
  });
});

describe('the adoption migration', () => {
  it('is the same text every time, IF NOT EXISTS throughout, and without a priority column orders by age', async () => {
    const table = describeTable(adapter, catalog(false), { requireCutoverColumns: false });
    const sql = await adoptionSql(table);
    expect(await adoptionSql(table)).toBe(sql);
    expect(sql).toContain('CREATE TYPE "app"."JobEngine"');
    expect(sql).toContain('ADD COLUMN IF NOT EXISTS "pgbossJobId" UUID');
    expect(sql).toMatch(/"Job_cutover_backlog_idx" ON "app"\."Job" \("createdAt"\)\s+WHERE "status" = 'PENDING' AND "engine" = 'LEGACY'/);
    expect(sql).toContain('CREATE TABLE IF NOT EXISTS "RolloutFlag"');
    // The guard's function and trigger are replaced whole (the trigger dropped IF EXISTS first).
    expect(sql).toMatch(/DROP TRIGGER IF EXISTS "Job_cutover_guard" ON "app"\."Job";\nCREATE TRIGGER "Job_cutover_guard"/);
    for (const statement of (sql.match(/^(CREATE|ALTER) .*$/gm) ?? []).filter((line) => !/^CREATE (OR REPLACE FUNCTION|TRIGGER) /.test(line))) expect(statement).toMatch(/IF NOT EXISTS|^ALTER TABLE/);
  });
});

describe('the config file', () => {
  it('names the file and the field of each mistake', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cutover-config-'));
    try {
      await writeFile(join(dir, 'cutover.config.mjs'), `export default { legacy: { table: '', jobType: 3, toJob: 1 }, registy: 'x' };\n`);
      const error = await loadConfigFile(undefined, dir).catch((caught: Error) => caught);
      expect(error).toBeInstanceOf(Error);
      const message = (error as Error).message;
      expect(message).toContain(join(dir, 'cutover.config.mjs'));
      expect(message).toMatch(/unknown field registy/);
      expect(message).toMatch(/legacy\.table: must not be empty/);
      expect(message).toMatch(/legacy\.jobType: must be the job type/);
      expect(message).toMatch(/legacy\.toJob: must be a function/);
      expect(message).toMatch(/legacy\.toRow: must be a function/);
      await expect(loadConfigFile('missing.config.ts', dir)).rejects.toThrow(/--config missing\.config\.ts: no such file/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('without a file, means the generic table and demo jobs', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cutover-config-'));
    try {
      expect(await loadConfigFile(undefined, dir)).toMatchObject({ file: undefined, legacy: undefined, registry: undefined });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the Prisma fields init prints', () => {
  it('cover every column and index the adoption migration adds, for every example table', async () => {
    const examples: [LegacyAdapter, CatalogColumn[]][] = [
      [
        { table: 'jobs', jobType: { column: 'queue' }, retries: 'same-row', toJob: () => ({ type: 'x', payload: {} }), toRow: () => ({}),
          columns: { status: 'status', attempts: 'attempts', createdAt: 'created_at', updatedAt: 'updated_at', startedAt: 'locked_at', completedAt: 'finished_at', error: 'last_error', runAt: 'run_at' } },
        ['id', 'queue', 'payload', 'status', 'attempts', 'created_at', 'updated_at', 'locked_at', 'finished_at', 'last_error', 'run_at'].map((name) => ({ name, type: name === 'id' ? 'bigint' : 'text', labels: null, generated: false })),
      ],
      [
        { table: 'Task', jobType: { column: 'kind' }, toJob: () => ({ type: 'x', payload: {} }), toRow: () => ({}), columns: { status: 'state', attempts: 'tries', completedAt: 'finishedAt' } },
        ['id', 'kind', 'data', 'state', 'tries', 'createdAt', 'finishedAt'].map((name) => ({ name, type: 'text', labels: null, generated: false })),
      ],
    ];
    for (const [adapter, columns] of examples) {
      const table = describeTable(adapter, columns, { requireCutoverColumns: false });
      const sql = await adoptionSql(table);
      const prisma = prismaFields(table);
      const added = [...sql.matchAll(/ADD COLUMN IF NOT EXISTS "([^"]+)"/g)].map((match) => match[1]!);
      // The adopted table's own indexes; cutover's tables are none of the team's Prisma model.
      const indexes = [...sql.matchAll(/CREATE (?:UNIQUE )?INDEX IF NOT EXISTS "([^"]+)" ON "public"\."([^"]+)"/g)].filter((match) => match[2] === adapter.table).map((match) => match[1]!);
      expect(indexes.length).toBeGreaterThanOrEqual(4);
      expect(added.length).toBeGreaterThan(6);
      for (const column of added) expect(prisma, `column ${column}`).toMatch(new RegExp(`^  ${column} +\\S`, 'm'));
      for (const index of indexes) expect(prisma, `index ${index}`).toContain(index);
    }
  });
});
