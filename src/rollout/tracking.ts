import { randomUUID } from 'node:crypto';
import type { Engine } from '../jobs/define.js';
import type { Tx } from '../db/sql.js';

/** One `Job` row to write: a legacy job, or the tracking (mirror) row of a pg-boss job. */
export interface NewJobRow {
  id?: string;
  type: string;
  payload: unknown;
  priority?: number;
  maxAttempts: number;
  engine: Engine;
  routeReason?: string | null;
  bucket?: number | null;
}

/** Writes any number of `Job` rows in one statement; pg-boss rows get `pgbossJobId = id`. */
export async function insertJobRows(tx: Pick<Tx, 'query'>, rows: readonly NewJobRow[]): Promise<string[]> {
  if (!rows.length) return [];
  const ids = rows.map((row) => row.id ?? randomUUID());
  await tx.query(
    `INSERT INTO "Job" (id, type, payload, priority, "maxAttempts", engine, "pgbossJobId", "routeReason", bucket,
                        status, "createdAt", "updatedAt", "runAfter")
     SELECT t.id, t.type, t.payload, t.priority, t."maxAttempts", t.engine::"JobEngine",
            CASE WHEN t.engine = 'PGBOSS' THEN t.id END, t."routeReason", t.bucket, 'PENDING', now(), now(), now()
       FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::int[], $5::int[], $6::text[], $7::text[], $8::int[])
            AS t(id, type, payload, priority, "maxAttempts", engine, "routeReason", bucket)`,
    [
      ids,
      rows.map((row) => row.type),
      rows.map((row) => JSON.stringify(row.payload)),
      rows.map((row) => row.priority ?? 0),
      rows.map((row) => row.maxAttempts),
      rows.map((row) => row.engine),
      rows.map((row) => row.routeReason ?? null),
      rows.map((row) => row.bucket ?? null),
    ],
  );
  return ids;
}
