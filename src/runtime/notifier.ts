import { createPool } from '../db/pool.js';
import { UsageError } from '../support/errors.js';
import type { Logger } from '../support/log.js';
import { Notifier, notifySettings, startNotifier, type NotifyCounts, type NotifySettings, type RunningNotifier } from '../notify/notify.js';
import type { ProjectConfig } from '../config/file.js';
import type { RuntimeContext } from './context.js';
import { explainFailure, readyTable } from './services.js';

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

export interface DeliverOptions {
  /** Deliver what is due now, then return, instead of running until the signal. */
  once: boolean;
  /** With `once`: milliseconds to spend at most. */
  timeoutMs: number;
  /** How often the loop looks for new events. */
  pollMs: number;
}

export type DeliverResult = { settings: NotifySettings } & NotifyCounts & { pending: number | null };

/**
 * The `notify` process: the configured webhook's delivery loop until the context's signal, or
 * with `once` one drain of what is due (its counts returned; undefined for the loop).
 */
export async function deliverNotifications(context: RuntimeContext, options: DeliverOptions): Promise<DeliverResult | undefined> {
  const { db, log, project, signal, command } = context;
  const settings = configuredWebhook(project);
  if (!settings) throw new UsageError('no webhook configured: set CUTOVER_WEBHOOK_URL (or notifications.webhook in cutover.config), RUNBOOK.md §3');
  const pool = createPool(db.url, { max: 2, applicationName: 'cutover-notify' });
  try {
    try {
      await readyTable(pool, project);
    } catch (error) {
      throw await explainFailure(error, { pool, url: db.url, command });
    }
    const notifier = new Notifier({ pool, webhook: settings.webhook, dlqThreshold: settings.dlqThreshold, log, pollMs: options.pollMs });
    if (!options.once) {
      await notifier.run(signal);
      return undefined;
    }
    return { settings, ...(await notifier.drain(options.timeoutMs, signal)) };
  } finally {
    await pool.end();
  }
}
