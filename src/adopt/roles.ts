import { UsageError } from '../support/errors.js';
import type { LegacyAdapter } from '../table/adapter.js';
import { archiveRef, quoteIdent, quoteLiteral } from '../table/table.js';

/**
 * Least privilege (RUNBOOK.md §8): what each part of a cutover deployment may do in the
 * database, as group roles an administrator grants to the login roles of the processes. Only
 * the owner (the role that ran `cutover db migrate` and first started pg-boss) holds DDL
 * rights; every component below gets data rights on the objects it touches and nothing else,
 * so a producer's credentials cannot roll anything back, and a dashboard's cannot write.
 *
 * The grants were found by running each component under its own role with nothing granted
 * and adding what Postgres refused, then checked by test/adopt/roles.test.ts, which runs
 * the whole story that way.
 */
export type Component = 'producer' | 'legacy-runner' | 'pgboss-worker' | 'operator' | 'dashboard';

export const COMPONENTS: readonly Component[] = ['producer', 'legacy-runner', 'pgboss-worker', 'operator', 'dashboard'];

/** What a component is, in the words of the RUNBOOK and the SQL comments. */
const DUTIES: Record<Component, string> = {
  producer: 'the RolloutManager in your application (and `cutover enqueue`): writes tracking rows and sends pg-boss jobs',
  'legacy-runner': 'the legacy runner (`cutover worker --engine legacy`, or your own with the claim change): claims, settles and retries legacy rows',
  'pgboss-worker': 'pg-boss workers (`cutover worker --engine pgboss`): run jobs, mirror their state to the rows, hand back jobs under a kill switch, and supervise pg-boss (expiry, retention)',
  operator: 'operator commands: migrate, rollback, reconcile [--fix], rollout set/kill/unkill, plan start/advance/abort/run, dlq retry',
  dashboard: 'read-only views: cutover status, rollout get/history, plan status, dlq list, and the dashboard',
};

/**
 * Which component a CLI command is, for the message when the database refuses it. A command
 * not listed is an operator's; `worker` is resolved by its engine.
 */
const COMMAND_COMPONENTS: Record<string, Component> = {
  enqueue: 'producer',
  'worker --engine legacy': 'legacy-runner',
  'worker --engine pgboss': 'pgboss-worker',
  status: 'dashboard',
  'rollout get': 'dashboard',
  'rollout history': 'dashboard',
  'plan status': 'dashboard',
  'dlq list': 'dashboard',
  metrics: 'dashboard',
  'drain-report': 'dashboard',
  preflight: 'dashboard',
  dashboard: 'dashboard',
};

export function componentOf(command: string): Component {
  return COMMAND_COMPONENTS[command] ?? 'operator';
}

/** The default prefix of the group roles: `cutover_producer`, `cutover_operator`, … */
export const DEFAULT_ROLE_PREFIX = 'cutover_';

const NAMES: Record<Component, string> = {
  producer: 'producer',
  'legacy-runner': 'legacy runner',
  'pgboss-worker': 'pg-boss worker',
  operator: 'operator',
  dashboard: 'dashboard',
};

/** "the operator's grants (group role cutover_operator)": what a refused command needs, in words. */
export function grantsOf(component: Component, prefix = DEFAULT_ROLE_PREFIX): string {
  return `the ${NAMES[component]}'s grants (group role ${roleName(component, prefix)} in \`cutover init --roles\`)`;
}

const PREFIX_RULE = /^[a-z_][a-z0-9_]{0,40}$/;

export function roleName(component: Component, prefix = DEFAULT_ROLE_PREFIX): string {
  if (!PREFIX_RULE.test(prefix)) throw new UsageError(`--role-prefix must be lower-case letters, digits and '_' (at most 41, not starting with a digit), got '${prefix}'`);
  return `${prefix}${component.replace(/-/g, '_')}`;
}

/** One GRANT: privileges on an object, and why the component needs them. */
export interface Grant {
  privileges: string;
  /** SQL: `TABLE "public"."Job"`, `SEQUENCE …`, `SCHEMA pgboss`. */
  on: string;
  why: string;
}

export interface RoleSpec {
  component: Component;
  role: string;
  duty: string;
  grants: Grant[];
}

/** The legacy table, as the grants name it. */
export interface RolesTarget {
  schema: string;
  /** Schema-qualified and quoted. */
  ref: string;
  /** The archive table `cutover archive` moves rows to, schema-qualified and quoted. */
  archive: string;
  label: string;
  /** The generic table with the demo jobs, whose `notification.send` writes DemoDelivery. */
  demo: boolean;
  /** A success leaves the table for the archive (adapter `onSuccess: 'archive'`): the workers move it. */
  successArchived?: boolean;
}

export function rolesTarget(adapter: LegacyAdapter | undefined): RolesTarget {
  if (!adapter) return { schema: 'public', ref: '"public"."Job"', archive: archiveRef({ adapter: { table: 'Job' } as LegacyAdapter }), label: 'public.Job', demo: true };
  const schema = adapter.schema ?? 'public';
  return {
    schema,
    ref: `${quoteIdent(schema)}.${quoteIdent(adapter.table)}`,
    archive: archiveRef({ adapter }),
    label: `${schema}.${adapter.table}`,
    demo: false,
    successArchived: adapter.onSuccess === 'archive',
  };
}

const PGBOSS = 'pgboss';
const pgboss = (table: string) => `TABLE ${PGBOSS}.${table}`;

/**
 * pg-boss's own needs, the same for every process that starts it. Every instance registers
 * itself in pgboss.instance, beats there and prunes dead instances' rows. PgBoss.start reads
 * the schema version; and because src/pgboss/boss.ts starts every instance with
 * `migrate: true`, each one also polls for background migrations (claiming the poll by
 * stamping pgboss.version, then reading pgboss.bam). Installing and upgrading the schema stay
 * the owner's: those are DDL, which no role here may run.
 */
function pgbossClient(): Grant[] {
  return [
    { privileges: 'USAGE', on: `SCHEMA ${PGBOSS}`, why: "pg-boss's schema" },
    { privileges: 'SELECT, UPDATE', on: pgboss('version'), why: 'PgBoss.start reads the schema version; the background-migration poll stamps its turn here' },
    { privileges: 'SELECT, UPDATE', on: pgboss('bam'), why: 'the background-migration poll reads pending commands (there are none between upgrades)' },
    { privileges: 'SELECT, INSERT, UPDATE, DELETE', on: pgboss('instance'), why: "each pg-boss instance registers itself, beats, and prunes dead instances' rows" },
  ];
}

/**
 * Jobs live in pgboss.job (partitioned by queue) and, for cutover's queues, in its shared
 * partition pgboss.job_common, which pg-boss also addresses directly (a queue names its table):
 * the same rights on both.
 */
function jobTables(privileges: string, why: string): Grant[] {
  return [
    { privileges, on: pgboss('job'), why },
    { privileges, on: pgboss('job_common'), why: `${why} (the queues' shared partition, addressed directly)` },
  ];
}

function cutoverTable(name: string): string {
  return `TABLE ${quoteIdent(name)}`;
}

function sequence(name: string): string {
  return `SEQUENCE ${quoteIdent(name)}`;
}

/** Every role's grants for the configured table. */
export function roleSpecs(target: RolesTarget, prefix = DEFAULT_ROLE_PREFIX): RoleSpec[] {
  const legacy = `TABLE ${target.ref}`;
  const schema = { privileges: 'USAGE', on: `SCHEMA ${quoteIdent(target.schema)}`, why: `the legacy table's schema` };
  const auditLog: Grant[] = [
    { privileges: 'INSERT', on: cutoverTable('RolloutEvent'), why: 'every change is audited' },
    { privileges: 'USAGE', on: sequence('RolloutEvent_id_seq'), why: 'audit row ids' },
  ];
  const heartbeats: Grant = { privileges: 'SELECT, INSERT, UPDATE, DELETE', on: cutoverTable('WorkerHeartbeat'), why: 'announce this worker (engine, host, version, types) for preflight' };
  // The notification delivery loop (RUNBOOK.md §3), which workers run when a webhook is configured:
  // it reads the audit log and reconcile runs (the outbox), copies rows into its own table, delivers.
  const notifications: Grant[] = [
    { privileges: 'SELECT, INSERT, UPDATE', on: cutoverTable('NotificationCursor'), why: 'notifications: how far the delivery loop has read each source' },
    { privileges: 'SELECT, INSERT, UPDATE, DELETE', on: cutoverTable('NotificationDelivery'), why: 'notifications: claim, deliver and retry each one; prune those done a week ago' },
    { privileges: 'USAGE', on: sequence('NotificationDelivery_id_seq'), why: 'notification ids' },
  ];
  const outbox: Grant[] = [
    { privileges: 'SELECT', on: cutoverTable('RolloutEvent'), why: 'notifications: the audit log is their outbox' },
    { privileges: 'SELECT', on: cutoverTable('ReconcileRun'), why: 'notifications: reconcile runs with findings' },
  ];
  const demo: Grant[] = target.demo
    ? [
        { privileges: 'INSERT', on: cutoverTable('DemoDelivery'), why: "the demo's notification.send job (your own jobs need their own grants)" },
        { privileges: 'USAGE', on: sequence('DemoDelivery_id_seq'), why: 'DemoDelivery ids' },
      ]
    : [];
  // Where a success leaves the table (delayed_job), both engines move its row to the archive.
  const successMoves: Grant[] = target.successArchived
    ? [
        { privileges: 'DELETE', on: legacy, why: "a success leaves the table, as the team's runner deletes it (onSuccess: 'archive')" },
        { privileges: 'INSERT', on: `TABLE ${target.archive}`, why: 'where a success goes instead' },
      ]
    : [];
  const grants: Record<Component, Grant[]> = {
    producer: [
      schema,
      { privileges: 'INSERT', on: legacy, why: 'the tracking row of every new job, in the same transaction as its pg-boss job' },
      { privileges: 'SELECT', on: cutoverTable('RolloutFlag'), why: 'routing percentages and kill switches' },
      { privileges: 'SELECT', on: cutoverTable('RolloutFinal'), why: 'finalized types: pinned to pg-boss, tracking rows or not' },
      ...pgbossClient(),
      { privileges: 'SELECT', on: pgboss('queue'), why: 'queue options and the queue cache' },
      // RETURNING of the new ids (and start times, for the queue's notice): those columns only,
      // so a producer cannot read other jobs' payloads.
      ...jobTables('INSERT, SELECT (id, start_after)', 'send jobs routed to pg-boss'),
    ],
    'legacy-runner': [
      schema,
      { privileges: 'SELECT, INSERT, UPDATE', on: legacy, why: 'claim (SELECT … FOR UPDATE SKIP LOCKED), heartbeat, settle, stale-job recovery, retries as new rows' },
      ...successMoves,
      heartbeats,
      ...demo,
      ...outbox,
      ...notifications,
    ],
    'pgboss-worker': [
      schema,
      { privileges: 'SELECT, INSERT, UPDATE', on: legacy, why: 'mirror each state change to the row; hand a job back to legacy under a kill switch; the tracking row of each recurring job tick' },
      ...successMoves,
      { privileges: 'SELECT', on: cutoverTable('RolloutFlag'), why: 'the kill switch, checked before each job runs; routing of recurring job ticks' },
      { privileges: 'SELECT', on: cutoverTable('RolloutFinal'), why: 'routing of recurring job ticks (finalized types)' },
      heartbeats,
      ...pgbossClient(),
      { privileges: 'SELECT, INSERT, UPDATE', on: pgboss('queue'), why: 'create and update the queues of the registry at start (plain rows: cutover uses no partitioned queues); supervision keeps their counts' },
      ...jobTables('SELECT, INSERT, UPDATE, DELETE', 'fetch, complete, fail, retry, dead-letter, expire, delete by retention, hand back'),
      { privileges: 'SELECT, DELETE', on: pgboss('job_dependency'), why: "supervision resolves dependents of finished jobs and deletes the dependencies of jobs it deletes (cutover sends no flows, so there are none)" },
      { privileges: 'SELECT, INSERT, DELETE', on: pgboss('warning'), why: 'supervision records and prunes its warnings' },
      { privileges: 'SELECT, INSERT, UPDATE, DELETE', on: pgboss('schedule'), why: "recurring jobs: each worker upserts its types' schedules, and pg-boss's shared cron pass reads them" },
      ...auditLog.map((grant) => ({ ...grant, why: `${grant.why}: the final state pg-boss gave a job whose worker died, copied to its row` })),
      ...demo,
      ...outbox,
      ...notifications,
    ],
    operator: [
      schema,
      { privileges: 'SELECT, INSERT, UPDATE, DELETE', on: legacy, why: 'migrate and rollback flip rows; reconcile --fix adopts orphans, copies final states, re-sends lost jobs; archive moves finished rows out' },
      { privileges: 'SELECT, INSERT', on: `TABLE ${target.archive}`, why: 'archive: where finished rows go, and which it already holds; reconcile: which jobs are archived, not orphans' },
      { privileges: 'SELECT, INSERT, UPDATE', on: cutoverTable('RolloutFlag'), why: 'rollout set/kill/unkill; rollback and plan abort set the kill switch first' },
      { privileges: 'SELECT, INSERT, UPDATE, DELETE', on: cutoverTable('RolloutFinal'), why: 'finalize, and --unfinalize' },
      { privileges: 'SELECT, INSERT, UPDATE, DELETE', on: cutoverTable('CutoverLease'), why: 'the locks of migrate, rollback and plan controllers: leases behind a transaction pooler, and a session lock\'s check for a live lease' },
      { privileges: 'SELECT', on: cutoverTable('WorkerHeartbeat'), why: 'preflight: live workers per type and their versions' },
      { privileges: 'SELECT', on: cutoverTable('_prisma_migrations'), why: 'preflight (and plan start): which migrations are applied' },
      { privileges: 'SELECT', on: cutoverTable('RolloutEvent'), why: 'rollout history' },
      ...auditLog,
      { privileges: 'SELECT, INSERT, UPDATE', on: cutoverTable('RolloutPlanRun'), why: 'plan start, advance, abort, run' },
      { privileges: 'SELECT, INSERT', on: cutoverTable('ReconcileRun'), why: 'each reconcile records its summary' },
      { privileges: 'USAGE', on: sequence('ReconcileRun_id_seq'), why: 'reconcile run ids' },
      { privileges: 'SELECT, INSERT, UPDATE', on: cutoverTable('MigrationQuarantine'), why: 'rows migrate cannot map, with the reason' },
      ...notifications,
      ...pgbossClient(),
      { privileges: 'SELECT, INSERT, UPDATE', on: pgboss('queue'), why: 'migrate creates the queues of the types it moves' },
      ...jobTables('SELECT, INSERT, UPDATE, DELETE', 'migrate inserts, rollback deletes unstarted jobs, reconcile re-sends, dlq retry'),
    ],
    dashboard: [
      schema,
      { privileges: 'SELECT', on: legacy, why: 'job counts per type, engine and status; drain-report; preflight' },
      ...['RolloutFlag', 'RolloutFinal', 'RolloutEvent', 'RolloutPlanRun', 'ReconcileRun', 'MigrationQuarantine', 'WorkerHeartbeat'].map((name) => ({
        privileges: 'SELECT',
        on: cutoverTable(name),
        why: 'flags, finalized types, audit log, plans, last reconcile, quarantine, live workers',
      })),
      { privileges: 'SELECT', on: cutoverTable('_prisma_migrations'), why: 'preflight: which migrations are applied' },
      { privileges: 'SELECT', on: cutoverTable('CutoverLease'), why: "plans: a controller behind a transaction pooler holds a lease, not a lock pg_locks shows" },
      { privileges: 'USAGE', on: `SCHEMA ${PGBOSS}`, why: "pg-boss's schema" },
      { privileges: 'SELECT', on: pgboss('queue'), why: 'queues' },
      { privileges: 'SELECT', on: pgboss('schedule'), why: 'recurring jobs and their next tick' },
      { privileges: 'SELECT', on: pgboss('warning'), why: "/metrics counts pg-boss's kept warnings by kind" },
      ...jobTables('SELECT', 'queue sizes, dead letters'),
    ],
  };
  return COMPONENTS.map((component) => ({ component, role: roleName(component, prefix), duty: DUTIES[component], grants: grants[component] }));
}

/** Every object any role is granted something on, so applying the SQL again starts from nothing. */
function objectsOf(specs: readonly RoleSpec[]): string[] {
  return [...new Set(specs.flatMap((spec) => spec.grants.map((grant) => grant.on)))];
}

/**
 * The SQL `cutover init --roles` prints: group roles (NOLOGIN) and their grants, for the
 * configured table. Applied by the owner once cutover's migrations ran and pg-boss installed
 * its schema; safe to apply again (each role's rights on these objects are revoked, then
 * granted as listed), and worth applying again after a pg-boss upgrade.
 */
export function rolesSql(target: RolesTarget, prefix = DEFAULT_ROLE_PREFIX): string {
  const specs = roleSpecs(target, prefix);
  const roles = specs.map((spec) => quoteIdent(spec.role)).join(', ');
  const lines: string[] = [
    `-- cutover least-privilege roles for ${target.label}: written by \`cutover init --roles\` (RUNBOOK.md §8).`,
    `-- Apply as the database owner, after \`cutover db migrate\` and after pg-boss installed its schema`,
    `-- (start pg-boss once as the owner). Safe to apply again; apply it again after upgrading pg-boss.`,
    `-- These are group roles (NOLOGIN): give each process a login role of its own that is a member, e.g.`,
    `--   CREATE ROLE orders_api LOGIN PASSWORD '...' IN ROLE ${specs[0]!.role};`,
    '',
    'DO $cutover$ BEGIN',
    `  IF to_regclass(${quoteLiteral(target.ref)}) IS NULL OR to_regclass('"RolloutFlag"') IS NULL THEN`,
    `    RAISE EXCEPTION 'cutover''s tables are not in this database: run cutover db migrate first';`,
    '  END IF;',
    `  IF to_regclass('${PGBOSS}.job') IS NULL THEN`,
    `    RAISE EXCEPTION 'pg-boss is not installed in this database: start pg-boss once as the owner (cutover worker --engine pgboss), then apply this again';`,
    '  END IF;',
    'END $cutover$;',
    '',
    'DO $cutover$ BEGIN',
    ...specs.map((spec) => `  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = ${quoteLiteral(spec.role)}) THEN CREATE ROLE ${quoteIdent(spec.role)} NOLOGIN; END IF;`),
    'END $cutover$;',
    '',
    '-- From nothing: what an earlier version of this file granted and this one does not is taken back.',
    ...objectsOf(specs).map((on) => `REVOKE ALL ON ${on} FROM ${roles};`),
  ];
  for (const spec of specs) {
    lines.push('', `-- ${spec.role}: ${spec.duty}.`);
    for (const grant of spec.grants) lines.push(`GRANT ${grant.privileges} ON ${grant.on} TO ${quoteIdent(spec.role)}; -- ${grant.why}`);
  }
  // A serial or identity id (or any column with a sequence default) of the team's table needs
  // USAGE on its sequence from whoever inserts rows; the catalog knows which sequences those are.
  const inserters = specs.filter((spec) => spec.grants.some((grant) => grant.on === `TABLE ${target.ref}` && /INSERT/.test(grant.privileges)));
  lines.push(
    '',
    `-- Sequences behind ${target.label}'s columns (serial or identity ids), for the roles that insert rows.`,
    'DO $cutover$ DECLARE s text; BEGIN',
    `  FOR s IN SELECT pg_get_serial_sequence(${quoteLiteral(target.ref)}, a.attname) FROM pg_attribute a`,
    `           WHERE a.attrelid = ${quoteLiteral(target.ref)}::regclass AND a.attnum > 0 AND NOT a.attisdropped`,
    `             AND pg_get_serial_sequence(${quoteLiteral(target.ref)}, a.attname) IS NOT NULL LOOP`,
    ...inserters.map((spec) => `    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO %I', s, ${quoteLiteral(spec.role)});`),
    '  END LOOP;',
    'END $cutover$;',
    '',
  );
  return lines.join('\n');
}
