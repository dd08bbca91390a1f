import { Option, type Command } from 'commander';
import { defaultActor } from '../state/audit.js';
import { formatDuration, DURATION_RULE } from '../support/duration.js';
import { CheckFailedError, UsageError } from '../support/errors.js';
import { migrationDirs } from '../adopt/adopt.js';
import { archive } from '../moves/archive.js';
import { drainReport, openRows, type DrainCounts } from '../checks/drain-report.js';
import { finalize } from '../moves/finalize.js';
import { preflight, type PreflightReport } from '../checks/preflight.js';
import { withContext, type CommandContext } from './context.js';
import { formatTable, printJson, printLines } from './output.js';
import { durationSeconds, integerIn } from './parse.js';
import { withServices, type Services } from './services.js';

// The two ends of a rollout: preflight before the first ramp; drain-report, finalize and
// archive after the last one (RUNBOOK.md §2 and §6).

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

export function registerRolloutEndCommands(program: Command): void {
  program
    .command('preflight')
    .description('before the first ramp: migrations, pg-boss schema, registry, queues, run times, payload sizes, live workers; exit 1 on any FAIL')
    .option('--type <type...>', 'only these job types')
    .addOption(new Option('--since <duration>', `how far back the legacy table is read; ${DURATION_RULE}`).argParser(durationSeconds).default(30 * 86_400, '30d'))
    .option('--alias <legacy=registered>', 'a legacy type renamed in the registry (repeatable)', aliasList)
    .option('--registry <module>', 'job registry module (default: the demo jobs)')
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

  program
    .command('drain-report')
    .description('what keeps the legacy runner alive: waiting, scheduled, retrying, running and quarantined legacy rows; exit 0 only when none are left')
    .option('--type <type...>', 'only these job types')
    .addOption(new Option('--stale <duration>', `a running row whose heartbeat is older has no live worker; ${DURATION_RULE}`).argParser(durationSeconds).default(60, '60s'))
    .option('--registry <module>', 'job registry module (default: the demo jobs)')
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

  program
    .command('finalize')
    .description('the end state of a type: routing pinned to pg-boss; refused unless it is at 100 % and drained')
    .requiredOption('--type <type>', 'the job type')
    .addOption(new Option('--tracking <keep|off>', 'keep writing tracking rows for new jobs, or let pg-boss alone record them').choices(['keep', 'off']).default('keep'))
    .option('--actor <name>', 'who, for the audit log (default: the OS user)')
    .option('--reason <text>', 'why, for the audit log')
    .option('--registry <module>', 'job registry module (default: the demo jobs)')
    .action(async (flags: { type: string; tracking: 'keep' | 'off'; actor?: string; reason?: string; registry?: string }, command: Command) => {
      await withContext(command, async (context) => {
        await withServices(context, { registry: flags.registry }, async ({ pool, registry, table }) => {
          const result = await finalize({ pool, registry, table, actor: flags.actor ?? defaultActor(), jobType: flags.type, tracking: flags.tracking === 'keep', reason: flags.reason ?? null });
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

  program
    .command('archive')
    .description('move finished legacy rows older than a duration to the archive table, in batches (resumable, audited)')
    .option('--type <type...>', 'only these job types (default: every registered type)')
    .requiredOption('--older-than <duration>', `rows finished at least this long ago; ${DURATION_RULE}`, durationSeconds)
    .option('--batch <rows>', 'rows of the table looked at per statement (smaller on a busy table)', integerIn(1, 100_000), 5000)
    .option('--actor <name>', 'who, for the audit log (default: the OS user)')
    .option('--registry <module>', 'job registry module (default: the demo jobs)')
    .action(async (flags: { type?: string[]; olderThan: number; batch: number; actor?: string; registry?: string }, command: Command) => {
      await withContext(command, async (context) => {
        await withServices(context, { registry: flags.registry }, async ({ pool, registry, table }) => {
          const types = flags.type?.length ? flags.type : registry.names();
          for (const type of types) registry.require(type);
          const result = await archive({ pool, table, log: context.log, actor: flags.actor ?? defaultActor(), types, olderThanSeconds: flags.olderThan, windowSize: flags.batch, signal: context.signal });
          if (context.json) return printJson(result);
          printLines([`moved ${result.moved} finished row(s) finished over ${formatDuration(flags.olderThan)} ago to ${result.archive}${result.complete ? '' : ' (stopped early: run it again to go on)'}`]);
        });
      });
    });
}
