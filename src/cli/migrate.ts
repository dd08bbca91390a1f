import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { CheckFailedError, UsageError } from '../support/errors.js';
import { migrateBacklog, type MigrateSummary } from '../moves/migrate.js';
import type { Pool } from '../db/pool.js';
import { countBacklog } from '../moves/migrate.sql.js';
import type { LegacyTable } from '../table/table.js';
import { confirm, onTerminal } from './confirm.js';
import { withContext } from './context.js';
import { durationSeconds, integerIn } from './parse.js';
import { formatTable, printJson, printLines } from './output.js';
import { withServices, type Services } from '../runtime/services.js';
import { registryOption } from './options.js';

interface MigrateFlags {
  type?: string;
  olderThan?: number;
  limit?: number;
  batch: number;
  concurrency: number;
  dryRun?: boolean;
  actor?: string;
  registry?: string;
}

/**
 * The migrate bar. Its goal is what will actually move: the backlog counted at the start, cut
 * to `--limit`, so `--limit 60` of 120 ends at 60/60, not 60/120. Rows a legacy runner claims
 * meanwhile never move: `complete` ends the bar at what was handled, full.
 */
function progressBar(enabled: boolean, limit: number | undefined): { update(done: number, total: number): void; complete(): void; stop(): void } {
  if (!enabled) return { update: () => undefined, complete: () => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar({ stream: process.stderr, format: 'migrate [{bar}] {value}/{total} rows | {eta_formatted} left', hideCursor: true }, cliProgress.Presets.shades_classic);
  let started = false;
  let goal = 0;
  let done = 0;
  return {
    update(handled, total) {
      if (!started) {
        goal = Math.min(total, limit ?? Number.POSITIVE_INFINITY);
        bar.start(goal, 0);
      }
      started = true;
      done = handled;
      bar.update(Math.min(done, goal));
    },
    complete() {
      if (!started) return;
      const end = Math.min(done, goal);
      bar.setTotal(end);
      bar.update(end);
    },
    stop: () => started && bar.stop(),
  };
}

/**
 * What `migrate` would take, per job type, before it asks: the filters' backlog counted per
 * registered type; rows of any other type are what is left of the total (they stay legacy,
 * quarantined). One count per type: registries hold a handful.
 */
async function backlogByType(pool: Pool, table: LegacyTable, types: readonly string[], filter: { type: string | undefined; olderThanSeconds: number | null }): Promise<{ byType: [string, number][]; unknown: number }> {
  const { olderThanSeconds } = filter;
  const total = await countBacklog(pool, table, { types: filter.type ? [filter.type] : null, olderThanSeconds });
  const byType: [string, number][] = [];
  for (const type of types) byType.push([type, await countBacklog(pool, table, { types: [type], olderThanSeconds })]);
  const known = byType.reduce((sum, [, count]) => sum + count, 0);
  return { byType: byType.filter(([, count]) => count > 0), unknown: Math.max(0, total - known) };
}

/** The question before a migrate on a terminal: nothing to ask when nothing would move. */
async function confirmMigrate(services: Pick<Services, 'pool' | 'table' | 'registry'>, flags: MigrateFlags, yes: boolean): Promise<void> {
  if (yes || flags.dryRun || !onTerminal()) return;
  const types = flags.type ? [flags.type] : services.registry.names();
  const backlog = await backlogByType(services.pool, services.table, types, { type: flags.type, olderThanSeconds: flags.olderThan ?? null });
  const movable = backlog.byType.reduce((sum, [, count]) => sum + count, 0);
  if (movable === 0 && backlog.unknown === 0) return;
  const now = flags.limit !== undefined && flags.limit < movable ? flags.limit : movable;
  const details = [
    `legacy PENDING jobs migrate would move to pg-boss${flags.type ? ` (type ${flags.type})` : ''}${flags.olderThan !== undefined ? ` (created at least ${flags.olderThan}s ago)` : ''}:`,
    ...formatTable(['type', 'jobs'], backlog.byType).map((line) => `  ${line}`),
  ];
  if (backlog.unknown) details.push(`  plus ${backlog.unknown} of types not in the registry: they stay legacy, quarantined`);
  if (now < movable) details.push(`--limit ${flags.limit}: ${now} of the ${movable} move now, the rest on a later run`);
  details.push('a job whose payload fails its schema is quarantined instead; `cutover rollback` moves unstarted jobs back');
  // Under --limit the rows taken first may or may not include the unmappable ones: no promise about them.
  const question = now < movable ? `move up to ${now} job(s) to pg-boss` : `move ${now} job(s) to pg-boss${backlog.unknown ? ` and quarantine ${backlog.unknown}` : ''}`;
  if (!(await confirm(question, false, { details }))) {
    throw new UsageError('migrate not confirmed; nothing changed');
  }
}

/** What a migrate did, for a person; a dry run says what would happen, without a duration or batches that never ran. */
function migrateLines(summary: MigrateSummary, limit: number | undefined): string[] {
  const limited = limit !== undefined ? `; ${summary.skipped} left for a later run by --limit ${limit}` : '';
  const lines = [
    summary.dryRun
      ? `would move ${summary.moved} job(s) to pg-boss; ${summary.quarantined} would be quarantined${limited} (dry run: nothing written)`
      : `moved ${summary.moved} job(s) to pg-boss in ${summary.seconds}s (${summary.batches} batches); ${summary.quarantined} quarantined${limited}`,
  ];
  if (summary.quarantine.length) {
    lines.push('', 'Quarantined (stay on legacy):', ...formatTable(['job', 'type', 'reason'], summary.quarantine.map((q) => [q.jobId, q.jobType, q.reason])).map((l) => `  ${l}`));
  }
  return lines;
}

export function registerMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description('move the legacy PENDING backlog to pg-boss, in batches, each one transaction')
    .option('--type <type>', 'only this job type')
    .option('--older-than <duration>', 'only jobs created at least this long ago (e.g. 30m, 2h, 7d)', durationSeconds)
    .option('--limit <n>', 'move at most this many rows', integerIn(1, 1_000_000_000))
    .option('--batch <n>', 'rows per transaction', integerIn(1, 10_000), 500)
    .option('--concurrency <n>', 'batches at once', integerIn(1, 16), 1)
    .option('--dry-run', 'write nothing; report what would move')
    .option('--actor <name>', 'who runs it, for the audit log (default: the OS user)')
    .addOption(registryOption())
    .action(async (flags: MigrateFlags, command: Command) => {
      await withContext(command, async (context) => {
        await withServices(context, { registry: flags.registry, poolMax: flags.concurrency + 2 }, async (services) => {
          const { registry, ops } = services;
          if (flags.type) registry.require(flags.type);
          await confirmMigrate(services, flags, context.yes);
          const bar = progressBar(!context.json && process.stderr.isTTY === true, flags.limit);
          let summary: MigrateSummary;
          try {
            summary = await migrateBacklog({
              ...(await ops(flags.actor)),
              batchSize: flags.batch,
              concurrency: flags.concurrency,
              dryRun: flags.dryRun ?? false,
              onProgress: (done, total) => bar.update(done, total),
              ...(flags.type ? { types: [flags.type] } : {}),
              ...(flags.olderThan !== undefined ? { olderThanSeconds: flags.olderThan } : {}),
              ...(flags.limit !== undefined ? { limit: flags.limit } : {}),
            });
            // A run a kill switch stopped keeps its bar where it stopped: it did not finish.
            if (!summary.stoppedBy) bar.complete();
          } finally {
            bar.stop();
          }
          const stopped = () => {
            if (summary.stoppedBy) throw new CheckFailedError(`migrate stopped early: ${summary.stoppedBy}; what moved stays moved, the rest stays legacy`);
          };
          if (context.json) {
            printJson(summary);
            return stopped();
          }
          printLines(migrateLines(summary, flags.limit));
          stopped();
        });
      });
    });
}
