import { Option, type Command } from 'commander';
import { CheckFailedError } from '../support/errors.js';
import { reconcile, type ReconcileReport } from '../reconcile/reconcile.js';
import type { TypeComparison } from '../reconcile/compare.js';
import { DURATION_RULE, formatDuration } from '../support/duration.js';
import { actorOf, withContext } from './context.js';
import { durationSeconds, integerIn } from './parse.js';
import { formatTable, printJson, printLines } from './output.js';
import { withServices } from '../runtime/services.js';
import { registryOption } from './options.js';

interface ReconcileFlags {
  type?: string;
  since: number;
  grace: number;
  minSample: number;
  fix?: boolean;
  actor?: string;
  registry?: string;
}

/** The success-rate test in words, with its evidence: never a bare "same". */
export function successVerdict(comparison: TypeComparison, minSample: number): string {
  if (comparison.z === null) return `no verdict: under ${minSample} jobs on an engine`;
  const difference = { same: 'no significant difference', better: 'pg-boss better', worse: 'pg-boss WORSE', 'not enough data': 'no verdict' }[comparison.verdict];
  return `${difference} (z ${comparison.z})`;
}

/** pg-boss's p95 over legacy's: latency is measured, not tested, so the ratio is shown as is. */
export function p95Ratio(comparison: TypeComparison): string {
  const [ours, theirs] = [comparison.pgboss.latencySeconds.p95, comparison.legacy.latencySeconds.p95];
  return ours === null || theirs === null || theirs === 0 ? '-' : `${(ours / theirs).toFixed(2)}×`;
}

function render(report: ReconcileReport, minSample: number): string[] {
  const lines = ['Consistency:'];
  for (const [name, { count, sample }] of Object.entries(report.findings)) {
    lines.push(`  ${name.padEnd(7)} ${count}`);
    for (const finding of sample.slice(0, 5)) lines.push(`    ${finding.id} ${finding.type}: ${finding.detail}`);
  }
  // Not a finding: pg-boss keeps a finished job for its retention while archive has moved its row.
  if (report.archived) lines.push(`  archived ${report.archived} (pg-boss still keeps these finished jobs; their rows are in the archive)`);
  if (report.fixed) lines.push(`Fixed: lost ${report.fixed.lost}, orphan ${report.fixed.orphan}, drift ${report.fixed.drift}`);
  lines.push('', `Outcomes (jobs created in the last ${formatDuration(report.window.sinceSeconds)}, per logical job; latency from creation to success):`);
  const fmt = (value: number | null, unit = '') => (value === null ? '-' : `${value}${unit}`);
  lines.push(
    ...formatTable(
      ['type', 'engine', 'jobs', 'success', 'attempts', 'p50', 'p95', 'p99', 'dead', 'p95 vs legacy', 'success rate vs legacy'],
      report.comparison.flatMap((c) =>
        [c.legacy, c.pgboss].map((o) => [
          c.type,
          o.engine,
          o.jobs,
          o.successRate === null ? '-' : `${(o.successRate * 100).toFixed(1)}%`,
          fmt(o.meanAttempts),
          fmt(o.latencySeconds.p50, 's'),
          fmt(o.latencySeconds.p95, 's'),
          fmt(o.latencySeconds.p99, 's'),
          o.deadLetters,
          o.engine === 'PGBOSS' ? p95Ratio(c) : '',
          o.engine === 'PGBOSS' ? successVerdict(c, minSample) : '',
        ]),
      ),
    ).map((l) => `  ${l}`),
  );
  if (report.comparison.length) {
    lines.push('  success rate vs legacy: two-proportion z-test at the 5 % level (|z| >= 1.96 is a difference); latency is compared by ratio only');
  }
  lines.push('', report.total ? remaining(report) : 'clean: nothing lost, nothing disagrees');
  return lines;
}

/** What is left, and what to do about it: --fix repairs lost, orphan and drift; the rest needs a person. */
function remaining(report: ReconcileReport): string {
  const { lost, orphan, drift, stuck, double } = report.findings;
  const fixable = lost.count + orphan.count + drift.count;
  const advice = [
    ...(fixable && !report.fixed ? [`run 'cutover reconcile --fix' to repair the ${fixable} lost, orphan or drift finding(s)`] : []),
    ...(fixable && report.fixed ? [`${fixable} lost, orphan or drift finding(s) are in flight or could not be repaired: run again after --grace`] : []),
    ...(stuck.count ? [`${stuck.count} stuck: running past their timeout (check the workers; RUNBOOK.md §5)`] : []),
    ...(double.count ? [`${double.count} double-run: read the samples above before anything else (RUNBOOK.md §5)`] : []),
  ];
  return `${report.total} finding(s) remain: ${advice.join('; ')}`;
}

export function registerReconcileCommand(program: Command): void {
  program
    .command('reconcile')
    .description('compare both systems: lost, orphan, drift, stuck and double-run jobs; outcomes per engine')
    .option('--type <type>', 'only this job type')
    .addOption(new Option('--since <duration>', `outcome window: jobs created this long ago or later; ${DURATION_RULE}`).argParser(durationSeconds).default(86_400, '24h'))
    .addOption(new Option('--grace <duration>', `how long an in-flight transition may take before it counts; ${DURATION_RULE}`).argParser(durationSeconds).default(60, '60s'))
    .option('--min-sample <n>', 'jobs per engine below which no verdict is given', integerIn(1, 1_000_000), 30)
    .option('--fix', 'repair what is safe: re-send lost, adopt orphans, copy final states')
    .option('--actor <name>', 'who runs it, for the audit log (default: the OS user)')
    .addOption(registryOption())
    .action(async (flags: ReconcileFlags, command: Command) => {
      await withContext(command, async (context) => {
        await withServices(context, { registry: flags.registry }, async ({ pool, registry, table, boss }) => {
          const report = await reconcile({
            pool,
            registry,
            table,
            log: context.log,
            actor: actorOf(flags),
            sinceSeconds: flags.since,
            graceSeconds: flags.grace,
            minSample: flags.minSample,
            fix: flags.fix ?? false,
            ...(flags.fix ? { boss: await boss() } : {}),
            ...(flags.type ? { types: [flags.type] } : {}),
          });
          if (context.json) printJson(report);
          else printLines(render(report, flags.minSample));
          if (report.total) throw new CheckFailedError(remaining(report));
        });
      });
    });
}
