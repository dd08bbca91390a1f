import type { PgBoss } from 'pg-boss';
import type { Pool } from '../db/pool.js';
import type { JobRegistry } from '../jobs/registry.js';
import type { LegacyTable } from '../table/table.js';
import type { Logger } from '../support/log.js';
import { tableOf } from '../table/context.js';
import { compareOutcomes, type TypeComparison } from './compare.js';
import { fixFindings, type FixCounts } from './fix.js';
import { findingQueries, summarize, type FindingClass } from './reconcile.sql.js';
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
  const timeouts = types.map((type) => Math.ceil(options.registry.require(type).timeoutSeconds));
  const params = [types, options.graceSeconds ?? 60, types, timeouts];
  const results = await Promise.all(
    CLASSES.map(async (name) => {
      const query = findingQueries(tableOf(options))[name];
      // Only the stuck query reads the timeouts; Postgres can't type a parameter no query uses.
      const { rows } = await options.pool.query<{ count: number; sample: Finding[] }>(summarize(query, SAMPLE), name === 'stuck' ? params : params.slice(0, 2));
      return [name, rows[0] ?? { count: 0, sample: [] }] as const;
    }),
  );
  return Object.fromEntries(results) as ReconcileReport['findings'];
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
  let fixed: FixCounts | null = null;
  if (options.fix) {
    if (!options.boss) throw new PgbossRequiredError('reconcile --fix');
    fixed = await fixFindings({ pool: options.pool, boss: options.boss, table: tableOf(options), registry: options.registry, actor: options.actor, types, graceSeconds: options.graceSeconds ?? 60 });
  }
  const [findings, comparison] = await Promise.all([findInconsistencies(options, types), compareOutcomes(options.pool, tableOf(options), types, sinceSeconds, options.minSample ?? 30)]);
  const total = CLASSES.reduce((sum, name) => sum + findings[name].count, 0);
  const report: ReconcileReport = { findings, total, fixed, comparison, window: { sinceSeconds }, seconds: Math.round((performance.now() - started) / 10) / 100 };
  await options.pool.query(`INSERT INTO "ReconcileRun" ("startedAt", "finishedAt", findings, summary) VALUES (now() - make_interval(secs => $1), now(), $2, $3::jsonb)`, [
    report.seconds,
    total,
    JSON.stringify({ counts: Object.fromEntries(CLASSES.map((c) => [c, findings[c].count])), fixed, types }),
  ]);
  options.log.info({ total, fixed, seconds: report.seconds }, 'reconcile finished');
  return report;
}
