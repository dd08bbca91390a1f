import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_STATUS } from '../../src/table/adapter.js';
import { GENERIC_CATALOG, GENERIC_TABLE, type CatalogColumn } from '../../src/table/table.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';

// cutover knows its generic Job table without asking the catalog (GENERIC_CATALOG). That
// description is kept by hand beside the migrations: a migration that renames or retypes a
// column must fail here, not in a worker's first statement.

interface ColumnRow {
  name: string;
  dataType: string;
  udtName: string;
  precision: number | null;
}

/** The migrated database's word for `Job`'s columns: information_schema.columns. */
async function catalogOf(client: pg.Client): Promise<Map<string, ColumnRow>> {
  const { rows } = await client.query<ColumnRow>(
    `SELECT column_name::text AS name, data_type::text AS "dataType", udt_name::text AS "udtName", datetime_precision::int AS precision
       FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'Job'`,
  );
  return new Map(rows.map((row) => [row.name, row]));
}

/** Whether a column of format_type's spelling (`"JobStatus"`, `timestamp(3) with time zone`) is the one information_schema describes. */
function compatible(described: string, actual: ColumnRow): boolean {
  const enumType = /^"(.+)"$/.exec(described);
  if (enumType) return actual.dataType === 'USER-DEFINED' && actual.udtName === enumType[1];
  const timestamp = /^(timestamp)\((\d)\)( with(?:out)? time zone)$/.exec(described);
  if (timestamp) return actual.dataType === `${timestamp[1]}${timestamp[3]}` && actual.precision === Number(timestamp[2]);
  return actual.dataType === described;
}

/** Every described column the catalog lacks or types otherwise, in words. */
function mismatches(described: readonly CatalogColumn[], catalog: ReadonlyMap<string, ColumnRow>): string[] {
  return described.flatMap((column) => {
    const actual = catalog.get(column.name);
    if (!actual) return [`${column.name}: no such column`];
    return compatible(column.type, actual) ? [] : [`${column.name}: described as ${column.type}, is ${actual.dataType} (${actual.udtName})`];
  });
}

describe('the generic table as cutover describes it', () => {
  let database: TestDatabase;
  let client: pg.Client;

  beforeAll(async () => {
    database = await createTestDatabase();
    client = new pg.Client({ connectionString: database.url });
    await client.connect();
  });

  afterAll(async () => {
    await client?.end();
    await database?.drop();
  });

  it('names only columns the migrated Job table has, each with its type', async () => {
    const catalog = await catalogOf(client);
    expect(mismatches(GENERIC_CATALOG, catalog)).toEqual([]);
    // Everything the bound description reads or writes is among them.
    expect([...GENERIC_TABLE.columns].filter((name) => !catalog.has(name))).toEqual([]);
  });

  it('has the status labels of the migrated enum', async () => {
    const { rows } = await client.query<{ label: string }>(
      `SELECT e.enumlabel::text AS label FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid WHERE t.typname = 'JobStatus' ORDER BY e.enumsortorder`,
    );
    const described = GENERIC_CATALOG.find((column) => column.name === 'status')?.labels ?? [];
    expect(rows.map((row) => row.label).sort()).toEqual([...described].sort());
    expect([...described].sort()).toEqual(Object.values(DEFAULT_STATUS).sort());
  });

  it('fails when a migration renames or retypes a described column', async () => {
    await client.query('BEGIN');
    try {
      await client.query(`ALTER TABLE "Job" RENAME COLUMN "routeReason" TO "route_reason"`);
      await client.query(`ALTER TABLE "Job" ALTER COLUMN "bucket" TYPE bigint`);
      expect(mismatches(GENERIC_CATALOG, await catalogOf(client))).toEqual(['routeReason: no such column', 'bucket: described as integer, is bigint (int8)']);
    } finally {
      await client.query('ROLLBACK');
    }
    expect(mismatches(GENERIC_CATALOG, await catalogOf(client))).toEqual([]);
  });
});
