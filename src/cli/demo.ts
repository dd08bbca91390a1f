import type { Command } from 'commander';
import { migrate } from '../db/migrate.js';
import { CheckFailedError, UsageError } from '../support/errors.js';
import { runDemo } from '../demo/run.js';
import { withContext } from './context.js';
import { formatTable, printJson, printLines } from './output.js';
import { p95Ratio, successVerdict } from './reconcile.js';

interface DemoFlags {
  fault: boolean;
  backlog: string;
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('the whole story on the embedded Postgres: backlog, dual run, rollout plan, migrate, fault, rollback, reconcile')
    .option('--no-fault', 'skip the second pass, where pg-boss breaks and the plan rolls back')
    .option('--backlog <n>', 'legacy jobs waiting at the start', '1200')
    .action(async (flags: DemoFlags, command: Command) => {
      const backlog = Number(flags.backlog);
      if (!Number.isInteger(backlog) || backlog < 0 || backlog > 100_000) throw new UsageError(`--backlog must be an integer from 0 to 100000, got '${flags.backlog}'`);
      await withContext(command, async (context) => {
        if (!context.db.embedded && !context.yes) {
          throw new UsageError('the demo empties the Job table and cutover tables of its database; run it on the embedded Postgres (no DATABASE_URL), or pass --yes');
        }
        const say = (line: string) => (context.json ? process.stderr : process.stdout).write(`${line}\n`);
        // The story is told by `say`; routine info logs would bury it (--verbose brings them back).
        const log = command.optsWithGlobals<{ verbose?: boolean }>().verbose ? context.log : context.log.child({}, { level: 'warn' });
        await migrate({ databaseUrl: context.db.url, log });
        const summary = await runDemo({ databaseUrl: context.db.url, log, say, fault: flags.fault, backlog, signal: context.signal });
        const { reconcile: report } = summary;
        if (context.json) printJson(summary);
        else {
          const pct = (v: number | null) => (v === null ? '-' : `${(v * 100).toFixed(1)}%`);
          const sec = (v: number | null) => (v === null ? '-' : `${v}s`);
          printLines([
            '',
            `Summary after ${summary.seconds}s (per engine, per logical job, from cutover reconcile):`,
            ...formatTable(
              ['type', 'engine', 'jobs', 'success', 'p50', 'p95', 'dead letters', 'p95 vs legacy', 'success rate vs legacy'],
              report.comparison.flatMap((c) =>
                [c.legacy, c.pgboss].map((o) => {
                  const pgboss = o.engine === 'PGBOSS';
                  return [c.type, o.engine, o.jobs, pct(o.successRate), sec(o.latencySeconds.p50), sec(o.latencySeconds.p95), o.deadLetters, pgboss ? p95Ratio(c) : '', pgboss ? successVerdict(c, 30) : ''];
                }),
              ),
            ).map((line) => `  ${line}`),
            '',
            `Plans: ${summary.passes.map((p, i) => `pass ${i + 1} ${p.state}${p.reason ? ` (${p.reason})` : ''}`).join('; ')}`,
            `Reconcile: lost ${report.findings.lost.count}, orphan ${report.findings.orphan.count}, drift ${report.findings.drift.count}, stuck ${report.findings.stuck.count}, double ${report.findings.double.count}`,
            `See it yourself: npx cutover reconcile; npx cutover rollout history; npx cutover status`,
          ]);
        }
        if (report.findings.lost.count || report.findings.double.count) throw new CheckFailedError('the demo found lost or double-run jobs');
      });
    });
}
