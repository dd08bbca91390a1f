import { inject } from 'vitest';
import { startPgBouncer as startInFrontOf, type PgBouncer, type PgBouncerOptions } from '../../scripts/pgbouncer.js';

export type { PgBouncer };

/** The scripts' PgBouncer (scripts/pgbouncer.ts), in front of the run's Postgres unless told otherwise. */
export function startPgBouncer(options: Partial<PgBouncerOptions> = {}): Promise<PgBouncer> {
  return startInFrontOf({ ...options, serverUrl: options.serverUrl ?? inject('adminDatabaseUrl') });
}
