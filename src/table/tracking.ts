import type { Engine } from '../jobs/define.js';
import type { Tx } from '../db/sql.js';
import type { LegacyRow } from './adapter.js';
import { pgbossIdFor } from './ids.js';
import { insertRows, insertRowsStatement, type Params } from './rows.js';
import { maxAttemptsValue, newRowIds, tablePriority, toRow, type LegacyTable } from './table.js';

/** One legacy row to write: a legacy job, or the tracking (mirror) row of a pg-boss job. */
export interface NewJobRow {
  id?: string;
  type: string;
  payload: unknown;
  /** In cutover's order (higher runs first, as pg-boss): written in the table's own. */
  priority?: number;
  maxAttempts: number;
  engine: Engine;
  routeReason?: string | null;
  bucket?: number | null;
}

/** The row's columns: the job's own through the adapter's toRow, then cutover's. */
function columnsOf(table: LegacyTable, id: string, row: NewJobRow): LegacyRow {
  const { names } = table;
  return {
    ...toRow(table, row.type, row.payload),
    [names.id]: id,
    [names.status]: table.statusValue.pending,
    [names.attempts]: 0,
    ...(names.priority ? { [names.priority]: tablePriority(table, row.priority ?? 0) } : {}),
    ...(names.maxAttempts ? { [names.maxAttempts]: maxAttemptsValue(table, row.maxAttempts) } : {}),
    engine: row.engine,
    pgbossJobId: row.engine === 'PGBOSS' ? pgbossIdFor(id) : null,
    routeReason: row.routeReason ?? null,
    bucket: row.bucket ?? null,
  };
}

/** Writes any number of rows in one statement; a pg-boss row's `pgbossJobId` is its id mapped to a UUID. */
export async function insertJobRows(tx: Pick<Tx, 'query'>, table: LegacyTable, rows: readonly NewJobRow[]): Promise<string[]> {
  const fresh = await newRowIds(tx, table, rows.filter((row) => row.id === undefined).length);
  const ids = rows.map((row) => row.id ?? fresh.shift()!);
  await insertRows(tx, table, rows.map((row, index) => columnsOf(table, ids[index]!, row)));
  return ids;
}

/** insertJobRows' statement for rows whose ids are known, for a caller that runs it inside a larger one (see insertRowsStatement). */
export function jobRowsStatement(table: LegacyTable, rows: readonly (NewJobRow & { id: string })[], params: Params, rest?: string): string {
  return insertRowsStatement(table, rows.map((row) => columnsOf(table, row.id, row)), params, rest);
}
