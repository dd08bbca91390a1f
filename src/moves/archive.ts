import { audit } from '../state/audit.js';
import type { Pool } from '../db/pool.js';
import { SchemaNotReadyError } from '../state/schema-check.js';
import { CheckFailedError } from '../support/errors.js';
import type { Logger } from '../support/log.js';
import { archiveRef, quoteIdent, typeSql, type LegacyTable } from '../table/table.js';

export interface ArchiveOptions {
  pool: Pool;
  table: LegacyTable;
  log: Logger;
  actor: string;
  types: readonly string[];
  /** Only rows finished at least this long ago. */
  olderThanSeconds: number;
  /** Rows of the table looked at per statement (keyset window on the primary key). @defaultValue 5000 */
  windowSize?: number;
  signal?: AbortSignal;
  onProgress?: (moved: number) => void;
}

export interface ArchiveResult {
  moved: number;
  /**
   * Rows deleted unmoved: the archive already held their job (same id, same pg-boss job), a
   * copy an earlier `reconcile --fix` re-created from pg-boss's job after the row was archived.
   */
  duplicates: number;
  /** Rows left in the table: the archive holds another row under their id (put back by hand?); see to them. */
  skipped: number;
  archive: string;
  /** False when stopped by the signal before the end of the table. */
  complete: boolean;
}

/**
 * Moves finished legacy rows (completed or failed, finished at least `olderThanSeconds` ago, no
 * open row left in their retry chain) to the table's archive, in windows along the primary key.
 * Each window is one statement (DELETE … RETURNING feeding the INSERT): a kill at any point
 * leaves every row in exactly one of the two tables, and a second run simply goes on (rows
 * already moved are no longer there to be found). Audited at start and at the end.
 *
 * A row whose id the archive already holds never fails the window on the archive's primary
 * key: when the archived row is the same pg-boss job, the live one is a re-created copy of it
 * and is deleted (the archive keeps the first); otherwise it stays where it is, counted as
 * skipped, and the run goes past it.
 */
export async function archive(options: ArchiveOptions): Promise<ArchiveResult> {
  const { pool, table, log } = options;
  const target = archiveRef(table);
  const columns = await archiveColumns(pool, table, target);
  const referenced = await referencingConstraints(pool, table);
  if (referenced.length) {
    throw new CheckFailedError(
      `other tables reference ${table.label} (${referenced.join(', ')}): archiving would delete rows they point at; archive or detach those first; nothing changed`,
    );
  }
  const { col, status, ref } = table;
  const list = columns.map(quoteIdent).join(', ');
  const values = columns.map((name) => `j.${quoteIdent(name)}`).join(', ');
  const chainOpen = col.originalJobId
    ? ` AND NOT EXISTS (SELECT 1 FROM ${ref} o WHERE o.${col.status} IN (${status.pending}, ${status.running})
                         AND (o.${col.originalJobId} = COALESCE(j.${col.originalJobId}, j.${col.id}) OR o.${col.id} = j.${col.originalJobId}))`
    : '';
  const statement = `
    WITH win AS (SELECT j.${col.id} AS id FROM ${ref} j WHERE ($1::${table.idType} IS NULL OR j.${col.id} > $1) ORDER BY j.${col.id} LIMIT $2),
    batch AS (
      SELECT j.${col.id} AS id FROM ${ref} j JOIN win ON win.id = j.${col.id}
       WHERE ${typeSql(table)} = ANY($3::text[]) AND j.${col.status} IN (${status.completed}, ${status.failed})
         AND COALESCE(j.${col.completedAt}, j.${col.updatedAt}) < (now() AT TIME ZONE 'UTC') - make_interval(secs => $4::float8)${chainOpen}
       FOR UPDATE OF j SKIP LOCKED),
    -- Rows whose id the archive holds already (as of this statement's snapshot), and whether it
    -- is the same pg-boss job there.
    held AS (
      SELECT batch.id, a."pgbossJobId" IS NOT NULL AND a."pgbossJobId" = j."pgbossJobId" AS same
        FROM batch JOIN ${ref} j ON j.${col.id} = batch.id JOIN ${target} a ON a.${col.id} = batch.id),
    -- Copied first, then deleted as far as copied: a row another session archived meanwhile
    -- under the same id is left out by the ON CONFLICT (no target: the archive may lack its
    -- primary key) and stays in the table, never failing the window.
    kept AS (
      INSERT INTO ${target} (${list})
      SELECT ${values} FROM ${ref} j JOIN batch ON batch.id = j.${col.id} WHERE NOT EXISTS (SELECT 1 FROM held WHERE held.id = batch.id)
      ON CONFLICT DO NOTHING RETURNING ${col.id} AS id),
    gone AS (
      DELETE FROM ${ref} j USING (SELECT id FROM kept UNION ALL SELECT id FROM held WHERE same) g WHERE j.${col.id} = g.id RETURNING 1)
    SELECT (SELECT id::text FROM win ORDER BY id DESC LIMIT 1) AS last, (SELECT count(*) FROM kept)::int AS moved,
           (SELECT count(*) FROM held WHERE same)::int AS duplicates, (SELECT count(*) FROM held WHERE NOT same)::int AS skipped`;

  const run = { types: options.types, olderThanSeconds: options.olderThanSeconds, archive: target };
  await audit(pool, { actor: options.actor, action: 'archive.start', jobType: options.types.length === 1 ? options.types[0]! : null, before: null, after: run });
  let last: string | null = null;
  let moved = 0;
  let duplicates = 0;
  let skipped = 0;
  let complete = true;
  for (;;) {
    if (options.signal?.aborted) {
      complete = false;
      break;
    }
    const result: { rows: { last: string | null; moved: number; duplicates: number; skipped: number }[] } = await pool.query(statement, [last, options.windowSize ?? 5000, options.types, options.olderThanSeconds]);
    const step = result.rows[0]!;
    moved += step.moved;
    duplicates += step.duplicates;
    skipped += step.skipped;
    if (step.moved) options.onProgress?.(moved);
    if (step.last === null) break;
    last = step.last;
  }
  await audit(pool, { actor: options.actor, action: 'archive', jobType: options.types.length === 1 ? options.types[0]! : null, before: null, after: { ...run, moved, duplicates, skipped, complete } });
  if (skipped) log.warn({ skipped, archive: target }, 'rows left in the table: the archive holds other rows under their ids');
  log.info({ moved, duplicates, skipped, archive: target, complete }, 'archived finished legacy rows');
  return { moved, duplicates, skipped, archive: target, complete };
}

/** The archive's columns, which must hold every column of the table (a column added later is added there too). */
async function archiveColumns(pool: Pool, table: LegacyTable, target: string): Promise<string[]> {
  const { rows } = await pool.query<{ exists: boolean; readable: boolean | null; source: string[]; archived: string[] }>(
    `SELECT to_regclass($2) IS NOT NULL AS exists,
            CASE WHEN to_regclass($2) IS NOT NULL THEN has_table_privilege(to_regclass($2), 'SELECT') END AS readable,
            ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum) AS source,
            ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($2) AND attnum > 0 AND NOT attisdropped) AS archived`,
    [table.ref, target],
  );
  const row = rows[0]!;
  if (!row.exists) {
    const how = table.adapter.table === 'Job' && !table.adapter.schema ? 'run `cutover db migrate`' : 'run `cutover init`, then `cutover db migrate`';
    throw new SchemaNotReadyError(`the archive table ${target} does not exist: ${how}; nothing changed`);
  }
  if (!row.readable) {
    throw new CheckFailedError(`archive reads ${target} for the rows it already holds: grant this role SELECT on it (besides INSERT); nothing changed`);
  }
  const archived = new Set(row.archived);
  const missing = row.source.filter((name) => !archived.has(name));
  if (missing.length) throw new SchemaNotReadyError(`the archive table ${target} lacks columns of ${table.label} (${missing.join(', ')}): add them to it; nothing changed`);
  return row.source;
}

/** Foreign keys of other tables that point at the legacy table. */
async function referencingConstraints(pool: Pool, table: LegacyTable): Promise<string[]> {
  const { rows } = await pool.query<{ name: string }>(
    `SELECT conrelid::regclass::text || '.' || conname AS name FROM pg_constraint WHERE contype = 'f' AND confrelid = to_regclass($1) AND conrelid <> confrelid`,
    [table.ref],
  );
  return rows.map((row) => row.name);
}
