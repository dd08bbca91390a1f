import type { Queryable } from '../db/pool.js';
import { DEFAULT_FLAG } from './flags.js';

/** SQL that is true when the kill switch of the type in parameter `$n` (or of `*`) is on. */
export function killSwitchOnSql(typeParam: string): string {
  return `EXISTS (SELECT 1 FROM "RolloutFlag" WHERE "killSwitch" AND "jobType" IN (${typeParam}, '${DEFAULT_FLAG}'))`;
}

/**
 * Which of `types` have their kill switch on, read fresh from "RolloutFlag" (no cache): the
 * `*` switch counts for every type. Read where acting on a stale answer would move a job the
 * wrong way: a pg-boss worker about to run a job (hand-back), migrate between batches.
 */
export async function killedTypes(db: Queryable, types: readonly string[]): Promise<string[]> {
  const { rows } = await db.query<{ jobType: string }>(`SELECT "jobType" FROM "RolloutFlag" WHERE "killSwitch" AND "jobType" = ANY($1::text[])`, [
    [DEFAULT_FLAG, ...types],
  ]);
  const killed = new Set(rows.map((row) => row.jobType));
  return killed.has(DEFAULT_FLAG) ? [...types] : types.filter((type) => killed.has(type));
}
