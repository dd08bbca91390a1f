import type { PgBoss } from 'pg-boss';
import type { Pool } from '../db/pool.js';
import type { JobRegistry } from '../jobs/registry.js';
import { GENERIC_TABLE, type LegacyTable } from './table.js';
import type { Logger } from '../support/log.js';

/** What every operator command works with: the database, pg-boss, the job registry, and who acts. */
export interface OpsContext {
  pool: Pool;
  /** For the sessions that hold advisory locks. */
  databaseUrl: string;
  boss: PgBoss;
  registry: JobRegistry;
  /** The legacy table, through its adapter. @defaultValue cutover's generic table */
  table?: LegacyTable;
  log: Logger;
  /** Recorded in the audit log. */
  actor: string;
}

export function tableOf(context: { table?: LegacyTable | undefined }): LegacyTable {
  return context.table ?? GENERIC_TABLE;
}
