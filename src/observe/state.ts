import type { Pool, Queryable } from '../db/pool.js';
import { countQueueJobs, countUnfinishedQueueJobs, type QueueSize } from '../pgboss-schema/read-model.js';
import { deadLetterQueue } from '../pgboss/queues.js';
import { effectiveRoute, type EffectiveRoute, type EnvOverride } from '../rollout/decide.js';
import type { Flag } from '../state/flags.js';
import { PGBOSS_SCHEMA } from '../state/schema-check.js';
import type { LegacyTable } from '../table/table.js';
import { isUndefinedTable } from '../support/pg-errors.js';
import {
  DEFAULT_WINDOW,
  readJobCounts,
  readLiveCounts,
  readRecentActivity,
  type ActivityWindow,
  type JobCount,
  type LiveCount,
  type RecentActivity,
} from './legacy-counts.js';

/**
 * The one read model of cutover's state: `cutover status`, /metrics (and `cutover metrics`), the
 * dashboard and `cutover plan status` all read through readState, each asking only for the parts
 * it shows. Reads that are cheap and small share one round trip (pg-boss installed, the flags,
 * the last reconcile); plan runs come with their controllers in one statement; the counts of the
 * legacy table and of pg-boss's queues run beside them, in parallel.
 */

export type { QueueSize } from '../pgboss-schema/read-model.js';

/** A RolloutFlag row with its finalization, and who changed it last. */
export interface StateFlag extends Flag {
  updatedAt: Date;
  updatedBy: string | null;
}

/** Unfinished jobs in one pg-boss queue (a type's own, or its dead letter queue), per state. */
export interface QueueDepth {
  type: string;
  /** `evaluation.process` or `evaluation.process.dlq`. */
  queue: string;
  deadLetter: boolean;
  created: number;
  retry: number;
  active: number;
}

export interface LastReconcile {
  at: string;
  findings: number;
  /** Findings per class (lost, orphan, drift, stuck, double) as that run counted them. */
  byClass: Record<string, number>;
  /** What that run's --fix repaired, if it ran with --fix. */
  fixed: Record<string, number> | null;
}

/**
 * Who holds a plan's controller lock (see runPlan), if anyone: a plan nobody drives stands still.
 * A controller on a session (directly, or with DIRECT_URL) holds a session advisory lock; one
 * behind a transaction pooler without DIRECT_URL holds a lease row instead (state/leases.ts),
 * which pg_locks never shows.
 */
export interface Controller {
  kind: 'session' | 'lease';
  /** The session's backend pid; for a lease, the controller process's own pid on its host. */
  pid: number;
  application: string | null;
  /** When the session connected, or when the lease was taken. */
  since: string | null;
  /** A lease's holder (`cutover-plan@host:pid:…`); null for a session. */
  holder: string | null;
}

/** A RolloutPlanRun row as stored (the plan is its JSON, parsed by the plans room), with its controller. */
export interface StoredPlanRun {
  id: string;
  planName: string;
  jobType: string;
  plan: unknown;
  currentStep: number;
  state: 'running' | 'paused' | 'completed' | 'aborted';
  stepStartedAt: Date;
  startedAt: Date;
  finishedAt: Date | null;
  reason: string | null;
  /** Who holds the run's controller lock; always null for a run that has ended (nobody is asked). */
  controller: Controller | null;
}

/**
 * The first key of a plan controller's advisory lock; the second is hashtext(jobType). runPlan
 * takes it, the read model looks for its holder.
 */
export const PLAN_LOCK_CLASS = 'cutover.plan';

/** Everything the read model can read, by part. */
export interface StateParts {
  /** RolloutFlag rows with their finalization, ordered by jobType (as Postgres sorts it). */
  flags: StateFlag[];
  /** Where new jobs of each of `types` go now, after kill switches and environment overrides. */
  routes: EffectiveRoute[];
  /** Every row of the legacy table by type, engine and status: a full count. */
  jobs: JobCount[];
  /** Rows waiting and running now, per type and engine. */
  live: LiveCount[];
  /** pg-boss jobs of the types' queues and dead letter queues, every state: a full count of those queues. Empty before pg-boss is installed. */
  queues: QueueSize[];
  /** Unfinished jobs of the types' queues and dead letter queues. Empty before pg-boss is installed. */
  depths: QueueDepth[];
  /** Finished jobs per minute, totals and latency buckets over the window. */
  activity: RecentActivity;
  /** The newest ReconcileRun, if any. */
  reconcile: LastReconcile | null;
  /** Plan runs (see ReadStateOptions.plans), newest first, with their controllers. */
  plans: StoredPlanRun[];
}

export type StatePart = keyof StateParts;

/** What every read has. */
export interface StateBase {
  /** When the reads finished. */
  at: string;
  /** False until a pg-boss process has installed its schema in this database. */
  pgbossInstalled: boolean;
  /** How long the reads took, in seconds. */
  seconds: number;
}

export type StateSnapshot<P extends StatePart = StatePart> = StateBase & Pick<StateParts, P>;

export interface ReadStateOptions<P extends StatePart> {
  /** The parts to read; nothing else is queried. */
  parts: readonly P[];
  /** The registered job types (routes, queues, depths and activity are per type). */
  types: readonly string[];
  /** PGBOSS_ROLLOUT_PERCENTAGE / USE_PGBOSS of this process, for routes. @defaultValue {} */
  env?: EnvOverride;
  /** For activity. @defaultValue DEFAULT_WINDOW */
  window?: ActivityWindow;
  /** Which runs `plans` reads: the active ones (running, paused), or the newest `recent` in any state. @defaultValue 'active' */
  plans?: 'active' | { recent: number };
}

interface OverviewRow {
  pgbossInstalled: boolean;
  reconciledAt: Date | null;
  findings: number | null;
  byClass: Record<string, number> | null;
  fixed: Record<string, number> | null;
  jobType: string | null;
  basisPoints: number;
  killSwitch: boolean;
  salt: string;
  fallbackToLegacy: boolean;
  updatedAt: Date;
  updatedBy: string | null;
  finalTracking: boolean | null;
}

interface Overview {
  pgbossInstalled: boolean;
  flags: StateFlag[];
  reconcile: LastReconcile | null;
}

/**
 * One round trip for the small reads: is pg-boss installed, the flags (one row each, the others'
 * columns repeated; one row of nulls when none is set) and the newest reconcile, as asked.
 */
async function readOverview(db: Queryable, want: { flags: boolean; reconcile: boolean }): Promise<Overview> {
  const reconcile = want.reconcile
    ? `r."finishedAt" AS "reconciledAt", r.findings, r.summary->'counts' AS "byClass", r.summary->'fixed' AS fixed`
    : `NULL::timestamptz AS "reconciledAt", NULL::int AS findings, NULL::jsonb AS "byClass", NULL::jsonb AS fixed`;
  const flags = want.flags
    ? `f."jobType", f."basisPoints", f."killSwitch", f.salt, f."fallbackToLegacy", f."updatedAt", f."updatedBy", fin.tracking AS "finalTracking"`
    : `NULL::text AS "jobType"`;
  const { rows } = await db.query<OverviewRow>(
    `SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AS "pgbossInstalled", ${reconcile}, ${flags}
       FROM (SELECT 1) AS one
       ${want.reconcile ? `LEFT JOIN LATERAL (SELECT "finishedAt", findings, summary FROM "ReconcileRun" ORDER BY id DESC LIMIT 1) r ON true` : ''}
       ${want.flags ? `LEFT JOIN ("RolloutFlag" f LEFT JOIN "RolloutFinal" fin ON fin."jobType" = f."jobType") ON true ORDER BY f."jobType"` : ''}`,
    [`${PGBOSS_SCHEMA}.version`, `${PGBOSS_SCHEMA}.job`],
  );
  const first = rows[0];
  return {
    pgbossInstalled: first?.pgbossInstalled ?? false,
    flags: rows.flatMap(({ jobType, basisPoints, killSwitch, salt, fallbackToLegacy, updatedAt, updatedBy, finalTracking }) => {
      if (jobType === null) return [];
      const flag: StateFlag = { jobType, basisPoints, killSwitch, salt, fallbackToLegacy, updatedAt, updatedBy };
      return [finalTracking === null ? flag : { ...flag, finalized: { tracking: finalTracking } }];
    }),
    reconcile:
      first?.reconciledAt && first.findings !== null
        ? { at: first.reconciledAt.toISOString(), findings: first.findings, byClass: first.byClass ?? {}, fixed: first.fixed ?? null }
        : null,
  };
}

interface PlanRunRow extends Omit<StoredPlanRun, 'controller'> {
  controllerKind: 'session' | 'lease' | null;
  controllerPid: number | null;
  controllerApplication: string | null;
  controllerSince: Date | null;
  controllerHolder: string | null;
}

/**
 * The controller of an active run: the session holding its advisory lock (a two-key advisory
 * lock shows in pg_locks as classid/objid, the int4 keys cast to oid, with objsubid 2), else a
 * live lease of the same key. A lease's holder is `application@host:pid:nonce` (openLockHolder).
 */
const sessionController = `
         SELECT 'session' AS kind, l.pid, a.application_name AS application, a.backend_start AS since, NULL::text AS holder
           FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.classid = hashtext($1)::oid AND l.objid = hashtext(r."jobType")::oid`;
const leaseController = `
         SELECT 'lease' AS kind, substring(c.holder FROM ':(\\d+):[^:]*$')::int AS pid, split_part(c.holder, '@', 1) AS application, c."takenAt" AS since, c.holder
           FROM "CutoverLease" c
          WHERE c.space = $1 AND c.name = r."jobType" AND c.mode = 'exclusive' AND c."expiresAt" > now()`;

function planRunsSql(withLeases: boolean): string {
  return `SELECT r.id, r."planName", r."jobType", r.plan, r."currentStep", r.state, r."stepStartedAt", r."startedAt", r."finishedAt", r.reason,
            c.kind AS "controllerKind", c.pid AS "controllerPid", c.application AS "controllerApplication", c.since AS "controllerSince", c.holder AS "controllerHolder"
       FROM "RolloutPlanRun" r
       LEFT JOIN LATERAL (
         SELECT * FROM (${sessionController}${withLeases ? `\n          UNION ALL${leaseController}` : ''}) held
          LIMIT 1
       ) c ON r.state IN ('running', 'paused')
      WHERE NOT $2::boolean OR r.state IN ('running', 'paused')
      ORDER BY r."startedAt" DESC
      LIMIT $3`;
}

/** Plan runs with each active one's controller, in one statement. */
async function readPlanRuns(db: Queryable, which: 'active' | { recent: number }): Promise<StoredPlanRun[]> {
  const active = which === 'active';
  const values = [PLAN_LOCK_CLASS, active, active ? null : which.recent];
  const { rows } = await db.query<PlanRunRow>(planRunsSql(true), values).catch((error: unknown) => {
    // A database migrated before leases existed has none: its controllers hold session locks.
    if (isUndefinedTable(error)) return db.query<PlanRunRow>(planRunsSql(false), values);
    throw error;
  });
  return rows.map(({ controllerKind, controllerPid, controllerApplication, controllerSince, controllerHolder, ...run }) => ({
    ...run,
    controller:
      controllerKind === null
        ? null
        : { kind: controllerKind, pid: controllerPid ?? 0, application: controllerApplication, since: controllerSince?.toISOString() ?? null, holder: controllerHolder },
  }));
}

function queuesOf(types: readonly string[]): string[] {
  return types.flatMap((type) => [type, deadLetterQueue(type)]);
}

async function readDepths(db: Queryable, types: readonly string[]): Promise<QueueDepth[]> {
  const rows = await countUnfinishedQueueJobs(db, queuesOf(types));
  return types.flatMap((type) =>
    [false, true].map((deadLetter) => {
      const queue = deadLetter ? deadLetterQueue(type) : type;
      const of = (state: string) => rows.find((row) => row.queue === queue && row.state === state)?.count ?? 0;
      return { type, queue, deadLetter, created: of('created'), retry: of('retry'), active: of('active') };
    }),
  );
}

/**
 * The parts asked for, read in parallel. Reads of pg-boss's tables wait for the overview's
 * "installed" (there is nothing to read before pg-boss created them); the others do not.
 */
export async function readState<P extends StatePart>(pool: Pool, table: LegacyTable, options: ReadStateOptions<P>): Promise<StateSnapshot<P>> {
  const started = performance.now();
  const want = new Set<StatePart>(options.parts);
  const { types } = options;
  const overview = readOverview(pool, { flags: want.has('flags') || want.has('routes'), reconcile: want.has('reconcile') });
  const afterInstall = <T>(read: () => Promise<T[]>): Promise<T[]> => overview.then((o) => (o.pgbossInstalled ? read() : []));
  const none = Promise.resolve(undefined);
  const [read, jobs, live, queues, depths, activity, plans] = await Promise.all([
    overview,
    want.has('jobs') ? readJobCounts(pool, table) : none,
    want.has('live') ? readLiveCounts(pool, table) : none,
    want.has('queues') ? afterInstall(() => countQueueJobs(pool, queuesOf(types))) : none,
    want.has('depths') ? afterInstall(() => readDepths(pool, types)) : none,
    want.has('activity') ? readRecentActivity(pool, table, types, options.window ?? DEFAULT_WINDOW) : none,
    want.has('plans') ? readPlanRuns(pool, options.plans ?? 'active') : none,
  ]);
  const flagMap = new Map(read.flags.map((flag) => [flag.jobType, flag]));
  const all: Partial<StateParts> = {
    ...(want.has('flags') ? { flags: read.flags } : {}),
    ...(want.has('routes') ? { routes: types.map((type) => effectiveRoute(type, flagMap, options.env ?? {})) } : {}),
    ...(jobs ? { jobs } : {}),
    ...(live ? { live } : {}),
    ...(queues ? { queues } : {}),
    ...(depths ? { depths } : {}),
    ...(activity ? { activity } : {}),
    ...(want.has('reconcile') ? { reconcile: read.reconcile } : {}),
    ...(plans ? { plans } : {}),
  };
  // Each part asked for was set above, so the Partial holds every key of P.
  return { at: new Date().toISOString(), pgbossInstalled: read.pgbossInstalled, seconds: Math.round(performance.now() - started) / 1000, ...(all as Pick<StateParts, P>) };
}
