import { Option, type Command } from 'commander';
import { finalize } from '../moves/finalize.js';
import { withServices } from '../runtime/services.js';
import { actorOf, withContext } from './context.js';
import { registryOption } from './options.js';
import { printJson, printLines } from './output.js';

export function registerFinalizeCommand(program: Command): void {
  program
    .command('finalize')
    .description('the end state of a type: routing pinned to pg-boss; refused unless it is at 100 % and drained')
    .requiredOption('--type <type>', 'the job type')
    .addOption(new Option('--tracking <keep|off>', 'keep writing tracking rows for new jobs, or let pg-boss alone record them').choices(['keep', 'off']).default('keep'))
    .option('--actor <name>', 'who, for the audit log (default: the OS user)')
    .option('--reason <text>', 'why, for the audit log')
    .addOption(registryOption())
    .action(async (flags: { type: string; tracking: 'keep' | 'off'; actor?: string; reason?: string; registry?: string }, command: Command) => {
      await withContext(command, async (context) => {
        await withServices(context, { registry: flags.registry }, async ({ pool, registry, table }) => {
          const result = await finalize({ pool, registry, table, actor: actorOf(flags), jobType: flags.type, tracking: flags.tracking === 'keep', reason: flags.reason ?? null });
          if (context.json) return printJson(result);
          printLines([
            result.changed
              ? `${result.jobType} finalized: every new job goes to pg-boss${result.tracking ? ', with its tracking row' : ', recorded by pg-boss alone (no tracking rows)'}`
              : `${result.jobType} was already finalized${result.tracking ? ' with tracking rows' : ' without tracking rows'}: nothing changed`,
            `routing below 100 % now needs: cutover rollout set <percent> --type ${result.jobType} --unfinalize`,
          ]);
        });
      });
    });
}
