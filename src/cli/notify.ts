import type { Command } from 'commander';
import { CheckFailedError } from '../support/errors.js';
import { webhookHost } from '../notify/webhook.js';
import { deliverNotifications } from '../runtime/notifier.js';
import { withContext } from './context.js';
import { printJson, printLines } from './output.js';
import { integerIn } from './parse.js';

interface NotifyOptions {
  once?: boolean;
  timeout: number;
  pollMs: number;
}

export function registerNotifyCommand(program: Command): void {
  program
    .command('notify')
    .description('deliver notifications (plan steps, gate failures, aborts, kill switches, reconcile findings, dead letters) to the webhook until SIGTERM/SIGINT')
    .option('--once', 'deliver what is due now, then exit (1 if some could not be delivered)')
    .option('--timeout <s>', 'with --once: seconds to spend at most', integerIn(1, 600), 10)
    .option('--poll-ms <ms>', 'how often to look for new events', integerIn(100, 60_000), 1000)
    .action(async (options: NotifyOptions, command: Command) => {
      await withContext(command, async (context) => {
        const result = await deliverNotifications(context, { once: options.once ?? false, timeoutMs: options.timeout * 1000, pollMs: options.pollMs });
        if (!result) return;
        const { settings, ...counts } = result;
        if (context.json) printJson({ webhook: webhookHost(settings.webhook), ...counts });
        else {
          printLines([
            `${webhookHost(settings.webhook)}: ${counts.delivered} delivered, ${counts.failed + counts.gaveUp} not delivered (${counts.gaveUp} given up), ${counts.pending ?? 'unknown'} pending`,
          ]);
        }
        if (counts.failed || counts.gaveUp || counts.pending === null) throw new CheckFailedError('some notifications could not be delivered: the log says why; a running delivery loop retries them');
      });
    });
}
