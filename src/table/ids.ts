import { v5 as uuidv5, validate as isUuid } from 'uuid';

/**
 * Namespace for mapping non-UUID legacy ids (cuid, serial) to pg-boss ids, fixed forever: the
 * same legacy id always maps to the same pg-boss id, in every process and every run.
 */
export const CUTOVER_ID_NAMESPACE = '6f2d3b1e-8c4a-5e7f-9a0b-1c2d3e4f5a6b';

/**
 * Any spelling Postgres's uuid type and pg-boss accept (any version): what a caller may pass as
 * a job id. pgbossIdFor is stricter on purpose: only RFC UUIDs are kept as they are.
 */
export function looksLikeUuid(value: string): boolean {
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(value);
}

export function pgbossIdFor(legacyId: string): string {
  return isUuid(legacyId) ? legacyId.toLowerCase() : uuidv5(legacyId, CUTOVER_ID_NAMESPACE);
}
