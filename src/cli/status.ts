import type { Command } from 'commander';
import { getStatus } from '../ops/status.js';
import { withContext } from './context.js';
import { formatTable, printJson, printLines } from './output.js';
import { withServices } from './services.js';

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('flags, job counts by type, engine and status, last reconcile')
    .option('--registry <module>', 'job registry module, for the queue list (default: the demo jobs)')
    .action(async (options: { registry?: string }, command: Command) => {
      await withContext(command, async (context) => {
        const { json } = context;
        await withServices(context, { registry: options.registry }, async ({ pool, registry, table }) => {
          const report = await getStatus(pool, table, registry.names());
          if (json) return printJson(report);
          const lines = ['Rollout flags:'];
          lines.push(
            ...(report.flags.length
              ? formatTable(
                  ['type', 'percent', 'kill switch', 'fallback', 'updated by'],
                  report.flags.map((f) => [f.jobType, `${f.percent}%`, f.killSwitch ? 'ON' : 'off', f.fallbackToLegacy ? 'on' : 'off', f.updatedBy ?? '-']),
                ).map((line) => `  ${line}`)
              : ['  none set: every job goes to legacy']),
          );
          lines.push('', 'Jobs:');
          lines.push(
            ...(report.jobs.length
              ? formatTable(['type', 'engine', 'status', 'count'], report.jobs.map((j) => [j.type, j.engine, j.status, j.count])).map((l) => `  ${l}`)
              : ['  none']),
          );
          lines.push('', 'pg-boss queues:');
          lines.push(
            ...(report.queues.length
              ? formatTable(['queue', 'state', 'count'], report.queues.map((q) => [q.queue, q.state, q.count])).map((l) => `  ${l}`)
              : ['  empty']),
          );
          lines.push('', `Last reconcile: ${report.lastReconcile ? `${report.lastReconcile.at}, ${report.lastReconcile.findings} findings` : 'never'}`);
          printLines(lines);
        });
      });
    });
}
