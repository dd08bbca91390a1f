import type { Tx } from '../db/sql.js';
import type { LegacyRow } from './adapter.js';
import { quoteIdent, type LegacyTable } from './table.js';

/**
 * Writes rows given as column values, whatever columns the table has, in one statement:
 * json_populate_recordset converts each value to its column's type (enum, uuid, jsonb), so
 * no module needs to know them. Creation and update times default to the database's clock.
 */
export async function insertRows(db: Pick<Tx, 'query'>, table: LegacyTable, rows: readonly LegacyRow[]): Promise<void> {
  if (!rows.length) return;
  const statement = insertRowsStatement(table, rows, '$1');
  await db.query(statement.text, [statement.value]);
}

/**
 * insertRows' statement, its one value bound at `param`, for a caller that runs it as part of a
 * larger statement; `rest` follows its FROM item `r` (a join, a WHERE).
 */
export function insertRowsStatement(table: LegacyTable, rows: readonly LegacyRow[], param: string, rest = ''): { text: string; value: string } {
  const columns = [...new Set([...rows.flatMap((row) => Object.keys(row)), ...table.timestampColumns])];
  const select = columns.map((name) => (table.timestampColumns.has(name) ? `COALESCE(r.${quoteIdent(name)}, now())` : `r.${quoteIdent(name)}`));
  return {
    text: `INSERT INTO ${table.ref} (${columns.map(quoteIdent).join(', ')}) ${table.idIdentityAlways ? 'OVERRIDING SYSTEM VALUE' : ''}
     SELECT ${select.join(', ')} FROM json_populate_recordset(NULL::${table.ref}, ${param}::json) AS r${rest ? ` ${rest}` : ''}`,
    value: JSON.stringify(rows),
  };
}

/** Bound values of one statement, numbered as they are added: for SQL whose parts vary by table. */
export class Params {
  readonly values: unknown[] = [];

  /** `$n` for the value, with a cast when given. */
  add(value: unknown, cast?: string): string {
    this.values.push(value);
    return `$${this.values.length}${cast ? `::${cast}` : ''}`;
  }
}

/**
 * Assignments of columns given as values (a job's result, by the adapter's onResult), read
 * from one bound JSON record. The statement must alias the table `j` and name its own columns
 * `j."..."`, since `r` has the same columns.
 */
export function assignColumns(table: LegacyTable, columns: LegacyRow, params: Params): { set: string; from: string } {
  const names = Object.keys(columns);
  return {
    set: names.map((name) => `, ${quoteIdent(name)} = r.${quoteIdent(name)}`).join(''),
    from: `json_populate_record(NULL::${table.ref}, ${params.add(JSON.stringify(columns), 'json')}) AS r`,
  };
}

/** Optional columns: the assignment when the table has the column, nothing otherwise. */
export function setIf(column: string | undefined, value: string): string {
  return column ? `, ${column} = ${value}` : '';
}
