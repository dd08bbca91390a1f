import type { Command } from 'commander';
import { CheckFailedError } from '../errors.js';
import { reconcile, type ReconcileReport } from '../ops/reconcile.js';
import { defaultActor } from '../db/audit.js';
import { withContext } from './context.js';
import { durationSeconds, integerIn } from './parse.js';
import { formatTable, printJson, printLines } from './output.js';
import { withServices } from './services.js';

interface ReconcileFlags {
  type?: string;
  since: number;
  grace: number;
  minSample: number;
  fix?: boolean;
  actor?: string;
  registry?: string;
}

function render(report: ReconcileReport): string[] {
  const lines = ['Consistency:'];
  for (const [name, { count, sample }] of Object.entries(report.findings)) {
    lines.push(`  ${name.padEnd(7)} ${count}`);
    for (const finding of sample.slice(0, 5)) lines.push(`    ${finding.id} ${finding.type}: ${finding.detail}`);
  }
  if (report.fixed) lines.push(`Fixed: lost ${report.fixed.lost}, orphan ${report.fixed.orphan}, drift ${report.fixed.drift}`);
  lines.push('', `Outcomes (last ${Math.round(report.window.sinceSeconds / 3600)}h, per logical job):`);
  const fmt = (value: number | null, unit = '') => (value === null ? '-' : `${value}${unit}`);
  lines.push(
    ...formatTable(
      ['type', 'engine', 'jobs', 'success', 'attempts', 'p50', 'p95', 'p99', 'dead', 'verdict'],
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
          o.engine === 'PGBOSS' ? c.verdict : '',
        ]),
      ),
    ).map((l) => `  ${l}`),
  );
  lines.push('', report.total ? `${report.total} finding(s) remain` : 'clean: nothing lost, nothing disagrees');
  return lines;
}

export function registerReconcileCommand(program: Command): void {
  program
    .command('reconcile')
    .description('compare both systems: lost, orphan, drift, stuck and double-run jobs; outcomes per engine')
    .option('--type <type>', 'only this job type')
    .option('--since <duration>', 'outcome window (e.g. 1h, 24h, 7d)', durationSeconds, 86_400)
    .option('--grace <s>', 'seconds an in-flight transition may take before it counts', integerIn(0, 86_400), 60)
    .option('--min-sample <n>', 'jobs per engine below which no verdict is given', integerIn(1, 1_000_000), 30)
    .option('--fix', 'repair what is safe: re-send lost, adopt orphans, copy final states')
    .option('--actor <name>', 'who runs it, for the audit log (default: the OS user)')
    .option('--registry <module>', 'job registry module (default: the demo jobs)')
    .action(async (flags: ReconcileFlags, command: Command) => {
      await withContext(command, async (context) => {
        await withServices(context, { registry: flags.registry }, async ({ pool, registry, table, boss }) => {
          const report = await reconcile({
            pool,
            registry,
            table,
            log: context.log,
            actor: flags.actor ?? defaultActor(),
            sinceSeconds: flags.since,
            graceSeconds: flags.grace,
            minSample: flags.minSample,
            fix: flags.fix ?? false,
            ...(flags.fix ? { boss: await boss() } : {}),
            ...(flags.type ? { types: [flags.type] } : {}),
          });
          if (context.json) printJson(report);
          else printLines(render(report));
          if (report.total) throw new CheckFailedError(`${report.total} finding(s) remain`);
        });
      });
    });
}
