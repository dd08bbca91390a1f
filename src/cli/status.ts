import type { Command } from 'commander';
import { listSchedules } from '../runtime/schedules.js';
import { getStatus } from '../observe/status.js';
import { planRunOf } from '../plans/plan-runner.js';
import { withContext } from './context.js';
import { formatTable, printJson, printLines } from './output.js';
import { runLine } from './plan.js';
import { withServices } from '../runtime/services.js';
import { registryOption } from './options.js';

const indent = (lines: readonly string[]) => lines.map((line) => `  ${line}`);

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('where new jobs go, flags, active plans, job counts by type, engine and status, last reconcile')
    .addOption(registryOption('job registry module, for the queue list (default: the demo jobs)'))
    .action(async (options: { registry?: string }, command: Command) => {
      await withContext(command, async (context) => {
        const { json } = context;
        await withServices(context, { registry: options.registry }, async ({ pool, registry, table }) => {
          const [{ plans: stored, ...report }, schedules] = await Promise.all([
            getStatus(pool, table, registry.names(), context.config.envOverride),
            listSchedules({ db: pool, registry }),
          ]);
          const plans = stored.map(planRunOf);
          if (json) return printJson({ ...report, plans, schedules });
          const lines = ['New jobs go (after kill switches and environment overrides):'];
          lines.push(...indent(formatTable(['type', 'to pg-boss', 'decided by'], report.routes.map((r) => [r.jobType, `${r.percent}%`, r.decidedBy]))));
          lines.push('', 'Rollout flags:');
          lines.push(
            ...(report.flags.length
              ? indent(
                  formatTable(
                    ['type', 'percent', 'kill switch', 'fallback', 'updated by'],
                    report.flags.map((f) => [f.jobType, `${f.percent}%`, f.killSwitch ? 'ON' : 'off', f.fallbackToLegacy ? 'on' : 'off', f.updatedBy ?? '-']),
                  ),
                )
              : ['  none set: every job goes to legacy']),
          );
          lines.push('', 'Active plans:');
          lines.push(
            ...(plans.length
              ? plans.map((run) => `  ${runLine(run)}${run.controller ? '' : ' (no controller attached: it does not move on its own)'}`)
              : ['  none']),
          );
          if (schedules.length) {
            lines.push('', 'Recurring jobs (pg-boss\'s scheduler files each tick once; a pg-boss worker enqueues it through the rollout):');
            const state = (info: (typeof schedules)[number]) =>
              !info.registered ? 'not in this registry' : !info.scheduled ? 'not scheduled yet: start a pg-boss worker' : info.outdated ? 'outdated: restart the pg-boss workers' : 'scheduled';
            lines.push(...indent(formatTable(['type', 'cron', 'zone', 'next tick', 'state'], schedules.map((info) => [info.type, info.cron, info.tz, info.nextTickAt ?? '-', state(info)]))));
          }
          lines.push('', 'Jobs:');
          lines.push(
            ...(report.jobs.length ? indent(formatTable(['type', 'engine', 'status', 'count'], report.jobs.map((j) => [j.type, j.engine, j.status, j.count]))) : ['  none']),
          );
          lines.push('', 'pg-boss queues:');
          lines.push(
            ...(!report.pgbossInstalled
              ? ['  pg-boss is not installed in this database yet: the first pg-boss worker or enqueue installs it']
              : report.queues.length
                ? indent(formatTable(['queue', 'state', 'count'], report.queues.map((q) => [q.queue, q.state, q.count])))
                : ['  empty']),
          );
          lines.push('', `Last reconcile: ${report.lastReconcile ? `${report.lastReconcile.at}, ${report.lastReconcile.findings} findings` : 'never'}`);
          printLines(lines);
        });
      });
    });
}
