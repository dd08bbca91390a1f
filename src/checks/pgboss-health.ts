import type { PgBoss, QueueResult, SchemaDriftReport } from 'pg-boss';
import type { Pool } from '../db/pool.js';
import type { JobRegistry } from '../jobs/registry.js';
import { inspectingBoss } from '../pgboss/boss.js';
import { describeQueueDifference, queueDifferences } from '../pgboss/queues.js';
import { PGBOSS_SCHEMA } from '../pgboss-schema/schema.js';
import { installedPgboss, readSchemaVersion } from '../pgboss-schema/version.js';
import { isPermissionDenied } from '../support/pg-errors.js';
import type { Check } from './preflight.js';

/**
 * pg-boss's own health as its installed release can check it: its schema against what that
 * release expects (drift: a missing or changed index, function, column, constraint or enum
 * value), its background migrations (index builds an upgrade left to run after start), and each
 * registered type's live queue options against what the registry implies. The two most reported
 * pains of pg-boss users: upgrades of its own schema, and queue options decided by whoever
 * created the queue first. Read-only: pg-boss is never started here.
 */
export async function pgbossHealthChecks(pool: Pool, registry: JobRegistry, types: readonly string[]): Promise<Check[]> {
  const boss = inspectingBoss(pool);
  return [await schemaDriftCheck(pool, boss), await backgroundMigrationsCheck(boss), ...(await queueOptionChecks(boss, registry, types))];
}

const pass = (check: string, type: string | null, value: string): Check => ({ check, type, status: 'pass', value, advice: '' });
const flag = (status: 'warn' | 'fail', check: string, type: string | null, value: string, advice: string): Check => ({ check, type, status, value, advice });

/** A read this role may not make reports a warning instead of failing the whole preflight. */
async function readable<T>(read: () => Promise<T>): Promise<T | 'denied'> {
  try {
    return await read();
  } catch (error) {
    if (isPermissionDenied(error)) return 'denied';
    throw error;
  }
}

const DENIED = 'run preflight as the operator (or the owner) to check it';

async function schemaDriftCheck(pool: Pool, boss: PgBoss): Promise<Check> {
  const check = 'pg-boss schema drift';
  const expected = installedPgboss();
  const version = await readable(() => readSchemaVersion(pool));
  if (version === 'denied') return flag('warn', check, null, `this role may not read ${PGBOSS_SCHEMA}.version`, DENIED);
  // Before install, and on another version (the 'pg-boss schema' check says which), the expectations of this release do not apply.
  if (version === null) return pass(check, null, 'not installed yet');
  if (version !== expected.schema) return flag('warn', check, null, `not compared: the schema is version ${version}, pg-boss ${expected.version} describes version ${expected.schema}`, 'see the pg-boss schema check');
  const report = await readable(() => boss.detectSchemaDrift());
  if (report === 'denied') return flag('warn', check, null, `this role may not read all of ${PGBOSS_SCHEMA}`, DENIED);
  const found = driftLines(report);
  if (found.length) {
    return flag(
      'fail',
      check,
      null,
      found.join('; '),
      `the shared schema '${PGBOSS_SCHEMA}' differs from what pg-boss ${expected.version} created and runs on: ` +
        'restore it as the owner (pg-boss\'s detectSchemaDrift() report carries each expected definition; `npx pg-boss plans` prints the full schema), and find what changed it',
    );
  }
  if (report.building.length) {
    return flag('warn', check, null, `still building: ${report.building.map((index) => index.name).join(', ')}`, "pg-boss's background migrations build these; see the pg-boss migrations check");
  }
  const extra = report.extraIndexes.length ? `; ${report.extraIndexes.length} index(es) pg-boss does not manage, harmless: ${report.extraIndexes.map((index) => index.name).join(', ')}` : '';
  return pass(check, null, `matches pg-boss ${expected.version} (schema version ${version})${extra}`);
}

/** What differs, one phrase per kind of drift, naming each object. */
function driftLines(report: SchemaDriftReport): string[] {
  const names = (items: readonly { name: string }[]) => items.map((item) => item.name).join(', ');
  const lines: string[] = [];
  if (report.missingTables.length) lines.push(`missing tables: ${report.missingTables.join(', ')}`);
  if (report.missing.length) lines.push(`missing indexes: ${names(report.missing)}`);
  if (report.invalid.length) lines.push(`invalid indexes (an interrupted build): ${names(report.invalid)}`);
  for (const index of report.mismatched) lines.push(`index ${index.name} differs in ${index.differs.join(', ')}: ${index.actualDefinition}, expected ${index.definition ?? 'another definition'}`);
  if (report.missingFunctions.length) lines.push(`missing functions: ${names(report.missingFunctions)}`);
  if (report.mismatchedFunctions.length) lines.push(`changed functions: ${names(report.mismatchedFunctions)}`);
  for (const table of report.columnDrift) {
    const parts = [
      table.missingColumns.length ? `missing columns ${table.missingColumns.join(', ')}` : '',
      table.unexpectedColumns.length ? `unexpected columns ${table.unexpectedColumns.join(', ')}` : '',
      ...table.defaultMismatches.map((m) => `${m.column} default ${m.actual}, expected ${m.expected}`),
      ...table.typeMismatches.map((m) => `${m.column} type ${m.actual}, expected ${m.expected}`),
      ...table.nullabilityMismatches.map((m) => `${m.column} ${m.actual ? 'NOT NULL' : 'nullable'}, expected ${m.expected ? 'NOT NULL' : 'nullable'}`),
    ].filter(Boolean);
    lines.push(`table ${table.table}: ${parts.join(', ')}`);
  }
  for (const table of report.constraintDrift) {
    const parts = [
      table.missingConstraints.length ? `missing constraints ${table.missingConstraints.join(', ')}` : '',
      table.unexpectedConstraints.length ? `unexpected constraints ${table.unexpectedConstraints.join(', ')}` : '',
    ].filter(Boolean);
    lines.push(`table ${table.table}: ${parts.join(', ')}`);
  }
  if (report.enumDrift) lines.push(`enum ${report.enumDrift.name}: ${report.enumDrift.actualValues.join(', ')}, expected ${report.enumDrift.expectedValues.join(', ')}`);
  return lines;
}

/**
 * pg-boss's background migrations (pgboss.bam): statements an upgrade leaves to run after start,
 * such as CREATE INDEX CONCURRENTLY on a large job table. Started instances with `migrate`
 * (cutover's all are) run them one at a time and try a failed one again.
 */
async function backgroundMigrationsCheck(boss: PgBoss): Promise<Check> {
  const check = 'pg-boss migrations';
  if (!(await boss.isInstalled())) return pass(check, null, 'not installed yet');
  const status = await readable(() => boss.getBamStatus());
  if (status === 'denied') return flag('warn', check, null, `this role may not read ${PGBOSS_SCHEMA}.bam`, DENIED);
  const count = (state: string) => status.find((row) => row.status === state)?.count ?? 0;
  const [pending, running, failed, completed] = [count('pending'), count('in_progress'), count('failed'), count('completed')];
  if (failed) {
    const entries = await boss.getBamEntries({ limit: 1000 });
    const detail = entries
      .filter((entry) => entry.status === 'failed')
      .slice(0, 5)
      .map((entry) => `${entry.name} on ${entry.table}: ${entry.error ?? 'no error recorded'}`)
      .join('; ');
    return flag(
      'fail',
      check,
      null,
      `${failed} background migration(s) failed${pending + running ? `, ${pending + running} not done` : ''}: ${detail}`,
      `a started pg-boss worker tries a failed one again; if it fails again, fix its cause (the error above; each statement is in ${PGBOSS_SCHEMA}.bam) and run it as the owner`,
    );
  }
  if (pending + running) {
    return flag('warn', check, null, `${pending} pending, ${running} running`, 'a started pg-boss worker runs them one at a time (index builds on a large job table take a while): wait for them before the first ramp, or queries run without their indexes meanwhile');
  }
  return pass(check, null, `none pending (${completed} done)`);
}

/**
 * Each registered type's queue as pg-boss has it, against what its definition implies: a queue
 * created first by someone else (another service, a hand-made queue, an older definition) keeps
 * its own retry, expiry and dead letter, and the registry's are not what runs.
 */
async function queueOptionChecks(boss: PgBoss, registry: JobRegistry, types: readonly string[]): Promise<Check[]> {
  if (!types.length || !(await boss.isInstalled())) return [];
  const live = await readable(() => boss.getQueues([...types]));
  if (live === 'denied') return [flag('warn', 'queue options', null, `this role may not read ${PGBOSS_SCHEMA}.queue`, DENIED)];
  const byName = new Map<string, QueueResult>(live.map((queue) => [queue.name, queue]));
  return types.flatMap((type) => {
    const queue = byName.get(type);
    // A missing queue is the queues check's finding.
    if (!queue) return [];
    const differences = queueDifferences(registry.require(type), queue);
    if (!differences.length) return [pass('queue options', type, 'as the registry declares')];
    const advice = [
      differences.some((difference) => difference.updatedAtStart) ? 'a pg-boss worker sets retry, expiry, dead letter and notify back from the registry when it starts (`cutover worker --engine pgboss`)' : '',
      differences.some((difference) => difference.option === 'retentionSeconds' || difference.option === 'deleteAfterSeconds')
        ? `set retention back as the operator (pg-boss's updateQueue('${type}', { retentionSeconds, deleteAfterSeconds }))`
        : '',
      differences.some((difference) => difference.option === 'policy') ? 'pg-boss cannot change a queue\'s policy: drain the queue, delete it and let a worker create it again' : '',
    ].filter(Boolean);
    return [flag('fail', 'queue options', type, differences.map((difference) => describeQueueDifference(type, difference)).join('; '), advice.join('; '))];
  });
}
