import type { Command } from 'commander';
import { createPool } from '../db/pool.js';
import { CheckFailedError, UsageError } from '../support/errors.js';
import type { Logger } from '../support/log.js';
import { Notifier, notifySettings, startNotifier, type NotifySettings, type RunningNotifier } from '../notify/notify.js';
import { webhookHost } from '../notify/webhook.js';
import type { ProjectConfig } from '../config/file.js';
import { withContext } from './context.js';
import { explainFailure, readyTable } from './services.js';
import { printJson, printLines } from './output.js';
import { integerIn } from './parse.js';

/** The webhook this process is configured with (CUTOVER_WEBHOOK_URL, else the config file), if any. */
export function configuredWebhook(project: ProjectConfig): NotifySettings | undefined {
  return notifySettings(process.env, project.notifications);
}

/**
 * The delivery loop beside a long-running command, on a pool of its own (so that a slow
 * receiver never holds a connection the command needs: no request is made inside a
 * transaction anyway); undefined when no webhook is configured. Its stop delivers what is
 * due for a few seconds at most, then closes the pool; it never throws.
 */
export function startConfiguredNotifier(settings: NotifySettings | undefined, target: { url: string; log: Logger }): RunningNotifier | undefined {
  if (!settings) return undefined;
  const pool = createPool(target.url, { max: 2, applicationName: 'cutover-notify' });
  const running = startNotifier({ pool, webhook: settings.webhook, dlqThreshold: settings.dlqThreshold, log: target.log });
  return {
    async stop(options) {
      try {
        await running.stop(options);
      } finally {
        await pool.end().catch(() => undefined);
      }
    },
  };
}

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
      await withContext(command, async ({ db, log, json, signal, project, command: what }) => {
        const settings = configuredWebhook(project);
        if (!settings) throw new UsageError('no webhook configured: set CUTOVER_WEBHOOK_URL (or notifications.webhook in cutover.config), RUNBOOK.md §3');
        const pool = createPool(db.url, { max: 2, applicationName: 'cutover-notify' });
        try {
          try {
            await readyTable(pool, project);
          } catch (error) {
            throw await explainFailure(error, { pool, url: db.url, command: what });
          }
          const notifier = new Notifier({ pool, webhook: settings.webhook, dlqThreshold: settings.dlqThreshold, log, pollMs: options.pollMs });
          if (!options.once) {
            await notifier.run(signal);
            return;
          }
          const result = await notifier.drain(options.timeout * 1000, signal);
          if (json) printJson({ webhook: webhookHost(settings.webhook), ...result });
          else {
            printLines([
              `${webhookHost(settings.webhook)}: ${result.delivered} delivered, ${result.failed + result.gaveUp} not delivered (${result.gaveUp} given up), ${result.pending ?? 'unknown'} pending`,
            ]);
          }
          if (result.failed || result.gaveUp || result.pending === null) throw new CheckFailedError('some notifications could not be delivered: the log says why; a running delivery loop retries them');
        } finally {
          await pool.end();
        }
      });
    });
}
