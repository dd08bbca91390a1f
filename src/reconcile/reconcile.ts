import type { PgBoss } from 'pg-boss';
import type { Pool } from '../db/pool.js';
import type { JobRegistry } from '../jobs/registry.js';
import { archiveRef, type LegacyTable } from '../table/table.js';
import type { Logger } from '../support/log.js';
import { tableOf } from '../table/context.js';
import { compareOutcomes, type TypeComparison } from './compare.js';
import { fixFindings, type FixCounts } from './fix.js';
import { archiveAccess, findingQueries, summarize, summarizeOrphans, type FindingClass } from './reconcile.sql.js';
import { PgbossRequiredError } from '../support/errors.js';

export interface Finding {
  id: string;
  type: string;
  detail: string;
}

export interface ReconcileReport {
  findings: Record<FindingClass, { count: number; sample: Finding[] }>;
  /** Findings left after any fixes. */
  total: number;
  fixed: FixCounts | null;
  /**
   * pg-boss jobs with no row in the table whose row is in the archive (`cutover archive` moved
   * it; pg-boss keeps finished jobs a while longer): neither orphans nor findings. Null when the
   * archive could not be read (absent, or no SELECT on it), so none could be told apart.
   */
  archived: number | null;
  comparison: TypeComparison[];
  window: { sinceSeconds: number };
  seconds: number;
}

export interface ReconcileOptions {
  pool: Pool;
  registry: JobRegistry;
  /** @defaultValue cutover's generic table */
  table?: LegacyTable;
  log: Logger;
  actor: string;
  /** Needed for --fix (lost jobs are re-sent). */
  boss?: PgBoss;
  types?: readonly string[];
  /** Outcome window. @defaultValue 86400 (a day) */
  sinceSeconds?: number;
  /** In-flight transitions younger than this are not findings. @defaultValue 60 */
  graceSeconds?: number;
  fix?: boolean;
  /** Jobs per engine below which no verdict is given. @defaultValue 30 */
  minSample?: number;
}

const CLASSES: readonly FindingClass[] = ['lost', 'orphan', 'drift', 'stuck', 'double'];
const SAMPLE = 20;

/** Every finding class, counted with a sample, without fixing anything. */
export async function findInconsistencies(options: Pick<ReconcileOptions, 'pool' | 'registry' | 'table' | 'graceSeconds'>, types: readonly string[]): Promise<ReconcileReport['findings']> {
  return (await inspect(options, types, await archiveAccess(options.pool, tableOf(options)))).findings;
}

async function inspect(
  options: Pick<ReconcileOptions, 'pool' | 'registry' | 'table' | 'graceSeconds'>,
  types: readonly string[],
  archive: Awaited<ReturnType<typeof archiveAccess>>,
): Promise<{ findings: ReconcileReport['findings']; archived: number | null }> {
  const timeouts = types.map((type) => Math.ceil(options.registry.require(type).timeoutSeconds));
  const params = [types, options.graceSeconds ?? 60, types, timeouts];
  const table = tableOf(options);
  let archived: number | null = null;
  const results = await Promise.all(
    CLASSES.map(async (name) => {
      const query = name === 'orphan' && archive === 'readable' ? summarizeOrphans(table, SAMPLE) : summarize(findingQueries(table)[name], SAMPLE);
      // Only the stuck query reads the timeouts; Postgres can't type a parameter no query uses.
      const { rows } = await options.pool.query<{ count: number; sample: Finding[]; archived?: number }>(query, name === 'stuck' ? params : params.slice(0, 2));
      const { archived: left = null, ...found } = rows[0] ?? { count: 0, sample: [] };
      if (name === 'orphan' && archive === 'readable') archived = left ?? 0;
      return [name, found] as const;
    }),
  );
  return { findings: Object.fromEntries(results) as ReconcileReport['findings'], archived };
}

/**
 * Compares both systems set-based in SQL, repairs what is safe with --fix (each repair its own
 * transaction, audited), compares outcomes per type and engine, and records the run.
 */
export async function reconcile(options: ReconcileOptions): Promise<ReconcileReport> {
  const started = performance.now();
  const types = options.types?.length ? [...options.types] : options.registry.names();
  for (const type of types) options.registry.require(type);
  const sinceSeconds = options.sinceSeconds ?? 86_400;
  const archive = await archiveAccess(options.pool, tableOf(options));
  if (archive === 'unreadable') {
    options.log.warn({ archive: archiveRef(tableOf(options)) }, 'reconcile may not read the archive table: grant this role SELECT on it; until then archived jobs count as orphans and --fix adopts no orphan');
  }
  let fixed: FixCounts | null = null;
  if (options.fix) {
    if (!options.boss) throw new PgbossRequiredError('reconcile --fix');
    fixed = await fixFindings({ pool: options.pool, boss: options.boss, table: tableOf(options), registry: options.registry, actor: options.actor, types, graceSeconds: options.graceSeconds ?? 60, archive });
  }
  const [{ findings, archived }, comparison] = await Promise.all([inspect(options, types, archive), compareOutcomes(options.pool, tableOf(options), types, sinceSeconds, options.minSample ?? 30)]);
  const total = CLASSES.reduce((sum, name) => sum + findings[name].count, 0);
  const report: ReconcileReport = { findings, total, fixed, archived, comparison, window: { sinceSeconds }, seconds: Math.round((performance.now() - started) / 10) / 100 };
  await options.pool.query(`INSERT INTO "ReconcileRun" ("startedAt", "finishedAt", findings, summary) VALUES (now() - make_interval(secs => $1), now(), $2, $3::jsonb)`, [
    report.seconds,
    total,
    JSON.stringify({ counts: Object.fromEntries(CLASSES.map((c) => [c, findings[c].count])), archived, fixed, types }),
  ]);
  options.log.info({ total, fixed, archived, seconds: report.seconds }, 'reconcile finished');
  return report;
}
