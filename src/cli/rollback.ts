import type { Command } from 'commander';
import { CheckFailedError, UsageError } from '../support/errors.js';
import { rollback, type RollbackSummary } from '../moves/rollback.js';
import { confirm } from './confirm.js';
import { withContext } from './context.js';
import { integerIn } from './parse.js';
import { printJson, printLines } from './output.js';
import { withServices } from '../runtime/services.js';
import { registryOption } from './options.js';

interface RollbackFlags {
  type?: string;
  drain?: boolean;
  timeout: number;
  dryRun?: boolean;
  actor?: string;
  reason?: string;
  registry?: string;
}

/** What a rollback did, for a person. */
function rollbackLines(summary: RollbackSummary, drain: boolean): string[] {
  const lines = [
    summary.dryRun
      ? `would move ${summary.moved} unstarted job(s) back to legacy and set the kill switch on ${summary.killSwitch.join(', ')} (dry run: nothing written)`
      : `moved ${summary.moved} unstarted job(s) back to legacy in ${summary.seconds}s; kill switch on: ${summary.killSwitch.join(', ')}`,
  ];
  if (summary.untracked) lines.push(`${summary.untracked} of them had no row (finalized with tracking off) and got one through the adapter's toRow`);
  for (const { type, jobs, reason } of summary.homeless) {
    lines.push(`NOT MOVED: ${jobs}+ job(s) of ${type} have no row and the table refused one (${reason}); they stay in pg-boss unrun while the kill switch is on`);
  }
  if (summary.stillActive.length) {
    lines.push(`${summary.stillActive.length} job(s) still running on pg-boss${drain ? ' after the drain timeout' : ''}; they finish there (check with: cutover reconcile)`);
  } else if (drain) lines.push('drained: no pg-boss job is running');
  return lines;
}

export function registerRollbackCommand(program: Command): void {
  program
    .command('rollback')
    .description('kill switch on, then move every pg-boss job not yet started back to legacy')
    .option('--type <type>', 'only this job type (default: all, and the kill switch goes on *)')
    .option('--drain', 'wait for running pg-boss jobs to finish')
    .option('--timeout <s>', 'seconds --drain waits', integerIn(0, 86_400), 300)
    .option('--dry-run', 'write nothing; report what would move')
    .option('--actor <name>', 'who runs it, for the audit log (default: the OS user)')
    .option('--reason <text>', 'why, for the audit log')
    .addOption(registryOption())
    .action(async (flags: RollbackFlags, command: Command) => {
      const { yes } = command.optsWithGlobals<{ yes?: boolean }>();
      if (!flags.dryRun && !(await confirm(`roll back ${flags.type ?? 'every job type'} to the legacy runner`, yes ?? false))) {
        throw new UsageError('rollback not confirmed; nothing changed');
      }
      await withContext(command, async (context) => {
        await withServices(context, { registry: flags.registry }, async ({ registry, ops }) => {
          if (flags.type) registry.require(flags.type);
          const summary: RollbackSummary = await rollback({
            ...(await ops(flags.actor)),
            drain: flags.drain ?? false,
            timeoutSeconds: flags.timeout,
            dryRun: flags.dryRun ?? false,
            signal: context.signal,
            settleMs: context.config.flagTtlMs,
            ...(flags.reason ? { reason: flags.reason } : {}),
            ...(flags.type ? { types: [flags.type] } : {}),
          });
          const drainTimedOut = () => {
            if (summary.homeless.length) {
              const jobs = summary.homeless.reduce((sum, entry) => sum + entry.jobs, 0);
              throw new CheckFailedError(`${jobs}+ pg-boss job(s) without a row could not be moved back (${summary.homeless.map((entry) => entry.type).join(', ')}): fix the adapter's toRow or the table, then run rollback again; they stay unrun meanwhile`);
            }
            if (flags.drain && summary.stillActive.length && !summary.dryRun) {
              throw new CheckFailedError(`${summary.stillActive.length} pg-boss job(s) still active after ${flags.timeout}s`);
            }
          };
          if (context.json) {
            printJson(summary);
            return drainTimedOut();
          }
          printLines(rollbackLines(summary, flags.drain ?? false));
          drainTimedOut();
        });
      });
    });
}
