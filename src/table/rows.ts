import type { Tx } from '../db/sql.js';
import type { LegacyRow } from './adapter.js';
import { quoteIdent, quoteLiteral, type ColumnEncoding, type LegacyTable } from './table.js';

/**
 * Writes rows given as column values, whatever columns the table has, in one statement (see
 * insertRowsStatement). Creation and update times default to the database's clock.
 */
export async function insertRows(db: Pick<Tx, 'query'>, table: LegacyTable, rows: readonly LegacyRow[]): Promise<void> {
  if (!rows.length) return;
  const params = new Params();
  await db.query(insertRowsStatement(table, rows, params), params.values);
}

/**
 * insertRows' statement, its values added to `params`, for a caller that runs it as part of a
 * larger statement; `rest` follows its FROM item `r` (a join, a WHERE). Each column is bound as
 * one array of its own type (the catalog's, enums and uuid included) and the arrays unnested
 * side by side: Postgres reads each value once by its type's input, where a JSON record per row
 * (json_populate_recordset) cost it half as much again. A column whose values an array cannot
 * carry through unnest (arrays, composites) is read from a JSON field of its own.
 */
export function insertRowsStatement(table: LegacyTable, rows: readonly LegacyRow[], params: Params, rest = ''): string {
  const columns = [...new Set([...rows.flatMap((row) => Object.keys(row)), ...table.timestampColumns])];
  const arrays: string[] = [];
  const select = columns.map((name) => {
    const column = table.columnTypes.get(name);
    if (!column) throw new Error(`${table.label} has no column "${name}" to write`);
    const encoding = column.encoding ?? encodingOf(column.type);
    const values = rows.map((row) => boundValue(row[name], encoding));
    arrays.push(params.add(values, encoding === 'text' ? `${arrayElementType(column.type)}[]` : encoding === 'json' ? `${column.type}[]` : 'text[]'));
    const value = `r.${quoteIdent(name)}`;
    if (encoding === 'record') return `(json_populate_record(NULL::${table.ref}, json_build_object(${quoteLiteral(name)}, ${value}::json))).${quoteIdent(name)}`;
    return table.timestampColumns.has(name) ? `COALESCE(${value}, now())` : value;
  });
  return `INSERT INTO ${table.ref} (${columns.map(quoteIdent).join(', ')}) ${table.idIdentityAlways ? 'OVERRIDING SYSTEM VALUE' : ''}
     SELECT ${select.join(', ')} FROM unnest(${arrays.join(', ')}) AS r(${columns.map(quoteIdent).join(', ')})${rest ? ` ${rest}` : ''}`;
}

/** A catalog without encodings (cutover's own description of its table): json by name, arrays by their `[]`. */
function encodingOf(type: string): ColumnEncoding {
  if (type === 'json' || type === 'jsonb') return 'json';
  return type.endsWith('[]') ? 'record' : 'text';
}

/**
 * One value as its column's array takes it, read as a JSON record would read it: JSON text for
 * json columns and record fields; Dates as ISO strings; objects in other columns as their JSON
 * text; null (or absent) as NULL.
 */
function boundValue(value: unknown, encoding: ColumnEncoding): string | null {
  if (value === null || value === undefined) return null;
  if (encoding !== 'text') return JSON.stringify(value);
  if (value instanceof Date) return value.toISOString();
  return typeof value === 'object' ? JSON.stringify(value) : String(value);
}

/**
 * The type an array of a column's values is cast to: format_type's spelling without the length
 * or precision, so a value too long for a varchar(n) fails as the column's own insert fails it
 * (an explicit cast to varchar(n) would cut it short). Bare `character` and `bit` mean a length
 * of one, so they are spelt by their internal names.
 */
function arrayElementType(type: string): string {
  const bare = type.replace(/"(?:[^"]|"")*"|\(\d+(?:,\d+)?\)/g, (part) => (part.startsWith('"') ? part : ''));
  return bare === 'character' ? 'bpchar' : bare === 'bit' ? '"bit"' : bare;
}

/** Bound values of one statement, numbered as they are added: for SQL whose parts vary by table. */
export class Params {
  /** `values`: those bound already, for a statement that extends one built elsewhere. */
  constructor(readonly values: unknown[] = []) {}

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
