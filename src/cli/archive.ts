import type { Command } from 'commander';
import { archive } from '../moves/archive.js';
import { withServices } from '../runtime/services.js';
import { DURATION_RULE, formatDuration } from '../support/duration.js';
import { actorOf, withContext } from './context.js';
import { registryOption } from './options.js';
import { printJson, printLines } from './output.js';
import { durationSeconds, integerIn } from './parse.js';

export function registerArchiveCommand(program: Command): void {
  program
    .command('archive')
    .description('move finished legacy rows older than a duration to the archive table, in batches (resumable, audited)')
    .option('--type <type...>', 'only these job types (default: every registered type)')
    .requiredOption('--older-than <duration>', `rows finished at least this long ago; ${DURATION_RULE}`, durationSeconds)
    .option('--batch <rows>', 'rows of the table looked at per statement (smaller on a busy table)', integerIn(1, 100_000), 5000)
    .option('--actor <name>', 'who, for the audit log (default: the OS user)')
    .addOption(registryOption())
    .action(async (flags: { type?: string[]; olderThan: number; batch: number; actor?: string; registry?: string }, command: Command) => {
      await withContext(command, async (context) => {
        await withServices(context, { registry: flags.registry }, async ({ pool, registry, table }) => {
          const types = flags.type?.length ? flags.type : registry.names();
          for (const type of types) registry.require(type);
          const result = await archive({ pool, table, log: context.log, actor: actorOf(flags), types, olderThanSeconds: flags.olderThan, windowSize: flags.batch, signal: context.signal });
          if (context.json) return printJson(result);
          printLines([`moved ${result.moved} finished row(s) finished over ${formatDuration(flags.olderThan)} ago to ${result.archive}${result.complete ? '' : ' (stopped early: run it again to go on)'}`]);
        });
      });
    });
}
