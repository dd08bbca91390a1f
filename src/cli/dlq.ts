import type { Command } from 'commander';
import { CheckFailedError, UsageError } from '../support/errors.js';
import { looksLikeUuid } from '../table/ids.js';
import { listDeadLetters, retryDeadLetters } from '../pgboss/dlq.js';
import { confirm } from './confirm.js';
import { actorOf, withContext } from './context.js';
import { formatTable, printJson, printLines } from './output.js';
import { withServices } from '../runtime/services.js';
import { registryOption } from './options.js';

interface DlqOptions {
  type?: string;
  id?: string;
  registry?: string;
  actor?: string;
}

/** `--type`, `--id` and `--registry`: which dead letters a subcommand takes. */
function letterOptions(command: Command): Command {
  return command
    .option('--type <type>', 'only this job type')
    .option('--id <id>', 'only this job (its id or its dead-letter copy id)')
    .addOption(registryOption());
}

function registerDlqListCommand(dlq: Command): void {
  letterOptions(dlq.command('list').description('dead-lettered jobs with their last error')).action(async (options: DlqOptions, command: Command) => {
    if (options.id && !looksLikeUuid(options.id)) throw new UsageError(`--id must be a UUID, got '${options.id}'`);
    await withContext(command, async (context) => {
      await withServices(context, { registry: options.registry }, async ({ pool, registry }) => {
        const types = options.type ? [registry.require(options.type).name] : registry.names();
        const letters = await listDeadLetters(pool, types, options.id);
        if (context.json) return printJson({ deadLetters: letters });
        printLines(
          letters.length
            ? formatTable(['job', 'type', 'attempts', 'dead since', 'error'], letters.map((l) => [l.jobId, l.type, l.attempts, l.deadAt, errorText(l.error)]))
            : ['no dead-lettered jobs'],
        );
      });
    });
  });
}

function registerDlqRetryCommand(dlq: Command): void {
  letterOptions(dlq.command('retry').description('send dead-lettered jobs back to their queue'))
    .option('--actor <name>', 'who runs it, for the audit log (default: the OS user)')
    .action(async (options: DlqOptions, command: Command) => {
    if (options.id && !looksLikeUuid(options.id)) throw new UsageError(`--id must be a UUID, got '${options.id}'`);
    await withContext(command, async (context) => {
      await withServices(context, { registry: options.registry }, async ({ pool, registry, boss, table }) => {
        const types = options.type ? [registry.require(options.type).name] : registry.names();
        const letters = await listDeadLetters(pool, types, options.id);
        if (!options.type && !options.id && letters.length) await confirmRetryAll(letters, context.yes);
        const { retried, notRetried } = letters.length ? await retryDeadLetters(pool, await boss(), table, letters, actorOf(options)) : { retried: [], notRetried: [] };
        if (context.json) {
          printJson({
            retried: retried.length,
            jobs: retried.map((l) => l.jobId),
            notRetried: notRetried.map((l) => ({ jobId: l.jobId, dlqJobId: l.dlqJobId, type: l.type, reason: l.reason })),
          });
        } else {
          printLines([
            `sent ${retried.length} job(s) back to their queue`,
            ...(notRetried.length
              ? [`not sent back (dead-letter copy kept): ${notRetried.length}`, ...formatTable(['job', 'type', 'reason'], notRetried.map((l) => [l.jobId, l.type, l.reason])).map((line) => `  ${line}`)]
              : []),
          ]);
        }
        if (notRetried.length) throw new CheckFailedError(`${notRetried.length} dead-lettered job(s) could not be sent back; their dead-letter copies are kept`);
      });
    });
  });
}

export function registerDlqCommands(program: Command): void {
  const dlq = program.command('dlq').description('pg-boss jobs that failed for good (dead letter queues)');
  registerDlqListCommand(dlq);
  registerDlqRetryCommand(dlq);
}

/**
 * Every dead letter of every type back to work is a broad action (each job runs again, side
 * effects and all): on a terminal it says what it would send and asks. Without one it runs as
 * it always has, as scripts and the runbook call it; `--type` or `--id` is a choice already made.
 */
async function confirmRetryAll(letters: readonly { type: string }[], yes: boolean): Promise<void> {
  const byType = new Map<string, number>();
  for (const letter of letters) byType.set(letter.type, (byType.get(letter.type) ?? 0) + 1);
  const details = [
    'dead-lettered jobs dlq retry would send back to their queue, to run again:',
    ...formatTable(['type', 'jobs'], [...byType].sort(([a], [b]) => a.localeCompare(b))).map((line) => `  ${line}`),
    'to send back fewer: --type <type> or --id <id>',
  ];
  if (!(await confirm(`send ${letters.length} dead-lettered job(s) back to their queue`, yes, { details, withoutTerminal: 'proceed' }))) {
    throw new UsageError('dlq retry not confirmed; nothing changed');
  }
}

function errorText(error: unknown): string {
  if (error && typeof error === 'object' && 'message' in error) return String((error as { message: unknown }).message);
  return JSON.stringify(error ?? null);
}
