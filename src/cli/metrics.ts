import type { Command } from 'commander';
import { buildRegistry } from '../dashboard/prometheus.js';
import { readMetrics } from '../observe/metrics.js';
import { withContext } from './context.js';
import { printJson, printText } from './output.js';
import { withServices } from '../runtime/services.js';
import { registryOption } from './options.js';

export function registerMetricsCommand(program: Command): void {
  program
    .command('metrics')
    .description('print the Prometheus metrics once, as /metrics serves them (for a textfile collector)')
    .addOption(registryOption())
    .action(async (options: { registry?: string }, command: Command) => {
      await withContext(command, async (context) => {
        await withServices(context, { registry: options.registry }, async ({ pool, registry, table }) => {
          const data = await readMetrics({ pool, table, types: registry.names(), env: context.config.envOverride });
          const metrics = buildRegistry(data);
          if (context.json) return printJson({ metrics: await metrics.getMetricsAsJSON() });
          printText(await metrics.metrics());
        });
      });
    });
}
