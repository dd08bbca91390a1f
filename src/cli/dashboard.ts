import type { Command } from 'commander';
import { startDashboard } from '../dashboard/server.js';
import { Snapshots } from '../dashboard/snapshot.js';
import { linkUrl, writeToken } from '../dashboard/guard.js';
import { withContext } from './context.js';
import { integerIn } from './parse.js';
import { printJson, printLines } from './output.js';
import { withServices } from '../runtime/services.js';
import { registryOption } from './options.js';

interface DashboardOptions {
  port: number;
  host: string;
  allowWrites?: boolean;
  refresh: number;
  pgbossDashboard?: string;
  registry?: string;
}

export function registerDashboardCommand(program: Command): void {
  program
    .command('dashboard')
    .description('a live web page of both systems side by side, and /metrics for Prometheus; read-only unless --allow-writes')
    .option('--port <n>', 'port to listen on (0: any free port)', integerIn(0, 65_535), 8080)
    .option('--host <address>', 'address to bind (anything but loopback makes the page reachable from the network)', '127.0.0.1')
    .option('--allow-writes', 'set percentages, kill switches and abort plans from the page, with the token printed at start (or CUTOVER_DASHBOARD_TOKEN)')
    .option('--refresh <seconds>', 'how often the page refreshes', integerIn(1, 300), 5)
    .option('--pgboss-dashboard <url>', 'a running @pg-boss/dashboard (npx pg-boss-dashboard), linked for per-job pg-boss detail')
    .addOption(registryOption())
    .action(async (options: DashboardOptions, command: Command) => {
      // Checked before anything starts: a bad token or link is a usage error, not a half-started server.
      const writes = options.allowWrites ? writeToken(process.env.CUTOVER_DASHBOARD_TOKEN) : null;
      const pgbossDashboardUrl = options.pgbossDashboard === undefined ? null : linkUrl(options.pgbossDashboard);
      await withContext(command, async (context) => {
        await withServices(context, { registry: options.registry, poolMax: 6 }, async (services) => {
          const source = { pool: services.pool, databaseUrl: context.db.url, registry: services.registry, table: services.table, log: context.log, env: context.config.envOverride };
          // One database read per refresh interval, however many pages poll.
          const snapshots = new Snapshots(source, Math.max(500, options.refresh * 1000 - 250));
          const server = await startDashboard({
            host: options.host,
            port: options.port,
            snapshots,
            actions: { ...source, boss: services.boss, settleMs: context.config.flagTtlMs },
            token: writes?.token ?? null,
            refreshSeconds: options.refresh,
            pgbossDashboardUrl,
          });
          try {
            const shownToken = writes?.generated ? writes.token : null;
            if (context.json) {
              printJson({ url: server.url, metrics: `${server.url}metrics`, writes: writes !== null, ...(shownToken ? { token: shownToken } : {}) });
            } else {
              printLines([
                `cutover dashboard: ${server.url} (${writes ? 'writes allowed with the token' : 'read-only'}); Prometheus metrics at ${server.url}metrics`,
                ...(shownToken ? [`write token: ${shownToken}`, `open ${server.url}#token=${shownToken} to use it from the page`] : []),
                ...(writes && !writes.generated ? ['write token: the one in CUTOVER_DASHBOARD_TOKEN'] : []),
                'Ctrl-C stops it',
              ]);
            }
            await new Promise<void>((resolve) => {
              if (context.signal.aborted) return resolve();
              context.signal.addEventListener('abort', () => resolve(), { once: true });
            });
          } finally {
            await server.close();
          }
        });
      });
    });
}
