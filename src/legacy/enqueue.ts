import { randomUUID } from 'node:crypto';
import type { PoolClient, Pool } from '../db/pool.js';

export interface NewLegacyRow {
  id?: string;
  type: string;
  payload: unknown;
  priority?: number;
  maxAttempts: number;
  routeReason?: string | null;
  bucket?: number | null;
}

/** Writes legacy PENDING rows in one statement, however many (the bulk path). */
export async function insertLegacyRows(db: Pick<Pool, 'query'> | PoolClient, rows: readonly NewLegacyRow[]): Promise<string[]> {
  if (!rows.length) return [];
  const ids = rows.map((row) => row.id ?? randomUUID());
  await db.query(
    `INSERT INTO "Job" (id, type, payload, priority, "maxAttempts", "routeReason", bucket, engine, status, "createdAt", "updatedAt", "runAfter")
     SELECT id, type, payload, priority, "maxAttempts", "routeReason", bucket, 'LEGACY', 'PENDING', now(), now(), now()
       FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::int[], $5::int[], $6::text[], $7::int[])
            AS t(id, type, payload, priority, "maxAttempts", "routeReason", bucket)`,
    [
      ids,
      rows.map((row) => row.type),
      rows.map((row) => JSON.stringify(row.payload)),
      rows.map((row) => row.priority ?? 0),
      rows.map((row) => row.maxAttempts),
      rows.map((row) => row.routeReason ?? null),
      rows.map((row) => row.bucket ?? null),
    ],
  );
  return ids;
}
