import { PgBoss, type CommandResponse, type ConstructorOptions } from 'pg-boss';
import { createPool, type Queryable } from '../db/pool.js';
import { OutageLog } from '../db/outage.js';
import type { Logger } from '../support/log.js';

import { PGBOSS_SCHEMA } from '../pgboss-schema/schema.js';
import { assertSupportedPgboss, installedPgboss, readSchemaVersion } from '../pgboss-schema/version.js';
import { UnsupportedPgbossError } from '../support/errors.js';

export { PGBOSS_SCHEMA };

export interface BossOptions {
  databaseUrl: string;
  log: Logger;
  /**
   * Workers supervise (expire dead jobs, retry them) and listen for new jobs; short-lived
   * producers and operator commands do neither. @defaultValue 'client'
   */
  role?: 'worker' | 'client';
  /** @defaultValue 10 */
  max?: number;
  /** How often a worker expires jobs whose owner died. @defaultValue 30 */
  superviseIntervalSeconds?: number;
  /**
   * Whether a worker LISTENs for new jobs. Off behind a transaction pooler without a direct URL:
   * a LISTEN there holds on to a server connection another client gets next. @defaultValue true
   */
  listen?: boolean;
  /** Passed through for distributed Postgres (CockroachDB, YugabyteDB, Citus). */
  backend?: ConstructorOptions['backend'];
}

/**
 * Refuses, before pg-boss starts, a pg-boss release or a database schema cutover was not tested
 * against (SUPPORTED_PGBOSS). A schema older than the installed release's is what pg-boss's
 * start migrates forward (`migrate: true`), so that release's schema is what it will run on; a
 * newer one pg-boss leaves as it is and would run on unknown tables.
 */
async function assertStartable(databaseUrl: string): Promise<void> {
  const installed = installedPgboss();
  const probe = createPool(databaseUrl, { max: 1, applicationName: 'cutover-pgboss-check' });
  let schema: number | null;
  try {
    schema = await readSchemaVersion(probe);
  } finally {
    await probe.end();
  }
  assertSupportedPgboss({ packageVersion: installed.version, schemaVersion: schema !== null && schema < installed.schema ? installed.schema : schema });
}

/** A started PgBoss sharing our config and logger; its own pool, no startup options (a pooler refuses them). */
export async function startBoss(options: BossOptions): Promise<PgBoss> {
  await assertStartable(options.databaseUrl);
  const worker = options.role === 'worker';
  const boss = new PgBoss({
    connectionString: options.databaseUrl,
    schema: PGBOSS_SCHEMA,
    max: options.max ?? 10,
    // No startup options: a transaction pooler refuses them. pg-boss's tables are timestamptz,
    // so its statements do not depend on the session's TimeZone; the name marks the
    // connections as cutover's for the adoption guard, and poolers keep it.
    application_name: worker ? 'cutover-pgboss-worker' : 'cutover-pgboss',
    migrate: true,
    supervise: worker,
    // pg-boss's cron pass is the clock of recurring jobs (ops/schedules.ts): every worker runs
    // it, and they share one pass (pg-boss claims it), so a tick is filed once however many run.
    schedule: worker,
    useListenNotify: worker && options.listen !== false,
    // A worker's warnings (slow supervision queries, queue backlogs, clock skew) go to
    // pgboss.warning as well as to the event: /metrics counts them there by type, so every
    // dashboard reports every worker's, and a restart loses none. The pg-boss worker role may
    // write them (adopt/roles.ts); producers and operator commands run no supervision.
    persistWarnings: worker,
    // Expiry of jobs whose worker died runs in the per-queue monitor pass, which runs at most
    // every monitorIntervalSeconds: both set together bound how soon such a job is retried.
    superviseIntervalSeconds: options.superviseIntervalSeconds ?? 30,
    monitorIntervalSeconds: options.superviseIntervalSeconds ?? 30,
    ...(options.backend ? { backend: options.backend } : {}),
  });
  // pg-boss polls on through an outage: one line when it starts, not one per poll and queue.
  const outage = new OutageLog(options.log, 'pg-boss', { quietMs: 10_000 });
  boss.on('error', (error: unknown) => void outage.failed(error, 'pg-boss error'));
  boss.on('warning', (warning: unknown) => options.log.warn({ warning }, 'pg-boss warning'));
  try {
    await boss.start();
  } catch (error) {
    // A start cut short (the database went away half-way) leaves pg-boss's pool and timers behind; a caller that tries again must not pile them up.
    await boss.stop({ graceful: false, close: true }).catch(() => undefined);
    throw error;
  }
  return boss;
}

/**
 * A PgBoss over our pool that is never started: for pg-boss's own read-only checks (schema drift,
 * background migrations, queue options), which run their SQL on the `db` they are given and start
 * nothing (no supervision, no registration, no migration).
 */
export function inspectingBoss(pool: Queryable): PgBoss {
  return new PgBoss({ db: { executeSql: (text: string, values?: unknown[]) => pool.query(text, values) }, schema: PGBOSS_SCHEMA });
}

/** pg-boss's `{ db }` over one of our pool clients: one adapter, in db/sql.ts. */
export { clientDb } from '../db/sql.js';

/**
 * How many jobs a pg-boss command (complete, fail, retry, deleteJob) really changed. pg-boss 12
 * returns `{ jobs, requested, affected }` (manager.js mapCommandResponse) but types it as an
 * empty `CommandResponse`; fences are worthless without the count, so a pg-boss that stops
 * reporting it is refused loudly rather than read as "none" or "all".
 */
export function affected(response: CommandResponse): number {
  const count = (response as { affected?: unknown }).affected;
  if (typeof count !== 'number') throw new UnsupportedPgbossError('pg-boss did not report how many jobs it changed; this pg-boss version is not supported');
  return count;
}
