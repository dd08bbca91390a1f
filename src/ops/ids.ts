import { v5 as uuidv5, validate as isUuid } from 'uuid';

/**
 * Namespace for mapping non-UUID legacy ids (cuid, serial) to pg-boss ids, fixed forever: the
 * same legacy id always maps to the same pg-boss id, in every process and every run.
 */
export const CUTOVER_ID_NAMESPACE = '6f2d3b1e-8c4a-5e7f-9a0b-1c2d3e4f5a6b';

export function pgbossIdFor(legacyId: string): string {
  return isUuid(legacyId) ? legacyId.toLowerCase() : uuidv5(legacyId, CUTOVER_ID_NAMESPACE);
}
