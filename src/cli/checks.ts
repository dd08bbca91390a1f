import { Option, type Command } from 'commander';
import { formatDuration, DURATION_RULE } from '../support/duration.js';
import { CheckFailedError, UsageError } from '../support/errors.js';
import { migrationDirs } from '../adopt/adopt.js';
import { drainReport, openRows, type DrainCounts } from '../checks/drain-report.js';
import { preflight, type PreflightReport } from '../checks/preflight.js';
import { withContext, type CommandContext } from './context.js';
import { formatTable, printJson, printLines } from './output.js';
import { durationSeconds } from './parse.js';
import { withServices, type Services } from '../runtime/services.js';
import { registryOption } from './options.js';

// The checks at the two ends of a rollout: preflight before the first ramp, drain-report
// after the last one (RUNBOOK.md §2 and §6).

function aliasList(value: string, previous: Map<string, string> = new Map()): Map<string, string> {
  const match = /^([^=\s]+)=([^=\s]+)$/.exec(value.trim());
  if (!match) throw new UsageError(`--alias must be <legacy type>=<registered type>, got '${value}'`);
  return new Map(previous).set(match[1]!, match[2]!);
}

export interface PreflightFlags {
  type?: string[];
  since: number;
  alias?: Map<string, string>;
}

/** Preflight with the command's context: `cutover preflight` and `cutover plan start` run this. */
export async function runPreflight(context: CommandContext, services: Services, flags: PreflightFlags): Promise<PreflightReport> {
  return preflight({
    pool: services.pool,
    registry: services.registry,
    table: services.table,
    migrationDirs: await migrationDirs(context.project),
    databaseUrl: context.db.url,
    directUrl: context.config.directUrl,
    windowSeconds: flags.since,
    env: context.config.envOverride,
    ...(flags.type?.length ? { types: flags.type } : {}),
    ...(flags.alias ? { aliases: flags.alias } : {}),
  });
}

export function renderPreflight(report: PreflightReport): string[] {
  const mark = { pass: 'ok', warn: 'WARN', fail: 'FAIL' } as const;
  return [
    ...formatTable(
      ['', 'check', 'type', 'measured', 'what to do'],
      report.checks.map((check) => [mark[check.status], check.check, check.type ?? '-', check.value, check.advice]),
    ),
    '',
    report.status === 'fail'
      ? `preflight FAILS: ${report.checks.filter((c) => c.status === 'fail').length} check(s) to fix before the first ramp`
      : report.status === 'warn'
        ? 'preflight passes with warnings: read them before the first ramp'
        : 'preflight passes',
  ];
}

function drainLines(counts: readonly DrainCounts[]): string[] {
  if (!counts.length) return ['nothing on the legacy side: every row of these types is final'];
  const age = (seconds: number | null) => (seconds === null ? '-' : formatDuration(Math.max(1, Math.round(seconds / 60)) * 60));
  return formatTable(
    ['type', 'waiting', '<1h', '1h-1d', '>1d', 'oldest', 'scheduled', 'last due', 'retrying', 'running (live)', 'running (no live heartbeat)', 'quarantined'],
    counts.map((c) => [
      c.type,
      c.waiting,
      c.waitingByAge.underHour,
      c.waitingByAge.hourToDay,
      c.waitingByAge.overDay,
      age(c.oldestWaitingSeconds),
      c.scheduled,
      c.lastDueAt ?? '-',
      c.retrying,
      c.runningLive,
      c.runningStale,
      c.quarantined,
    ]),
  );
}

export function registerPreflightCommand(program: Command): void {
  program
    .command('preflight')
    .description('before the first ramp: migrations, pg-boss schema, registry, queues, run times, payload sizes, live workers; exit 1 on any FAIL')
    .option('--type <type...>', 'only these job types')
    .addOption(new Option('--since <duration>', `how far back the legacy table is read; ${DURATION_RULE}`).argParser(durationSeconds).default(30 * 86_400, '30d'))
    .option('--alias <legacy=registered>', 'a legacy type renamed in the registry (repeatable)', aliasList)
    .addOption(registryOption())
    .action(async (flags: PreflightFlags & { registry?: string }, command: Command) => {
      await withContext(command, async (context) => {
        await withServices(context, { registry: flags.registry }, async (services) => {
          const report = await runPreflight(context, services, flags);
          if (context.json) printJson(report);
          else printLines(renderPreflight(report));
          if (report.status === 'fail') throw new CheckFailedError(`preflight: ${report.checks.filter((c) => c.status === 'fail').map((c) => `${c.check}${c.type ? ` (${c.type})` : ''}`).join(', ')} failed`);
        });
      });
    });
}

export function registerDrainReportCommand(program: Command): void {
  program
    .command('drain-report')
    .description('what keeps the legacy runner alive: waiting, scheduled, retrying, running and quarantined legacy rows; exit 0 only when none are left')
    .option('--type <type...>', 'only these job types')
    .addOption(new Option('--stale <duration>', `a running row whose heartbeat is older has no live worker; ${DURATION_RULE}`).argParser(durationSeconds).default(60, '60s'))
    .addOption(registryOption())
    .action(async (flags: { type?: string[]; stale: number; registry?: string }, command: Command) => {
      await withContext(command, async (context) => {
        await withServices(context, { registry: flags.registry }, async ({ pool, table }) => {
          const report = await drainReport(pool, table, { staleAfterSeconds: flags.stale, ...(flags.type?.length ? { types: flags.type } : {}) });
          if (context.json) printJson(report);
          else printLines([...drainLines(report.types), '', report.drained ? 'drained: the legacy runner has nothing left to do for these types' : 'not drained']);
          if (!report.drained) {
            const open = report.types.reduce((sum, counts) => sum + openRows(counts), 0);
            throw new CheckFailedError(`${open} legacy row(s) are not final yet`);
          }
        });
      });
    });
}
