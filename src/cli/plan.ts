import type { Command } from 'commander';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckFailedError, UsageError, messageOf } from '../support/errors.js';
import { errorCode } from '../support/pg-errors.js';
import { readState } from '../observe/state.js';
import { describeStep, loadPlan } from '../plans/plan.js';
import {
  abortPlan,
  activeRun,
  advancePlan,
  evaluateStep,
  planRunOf,
  runPlan,
  startPlan,
  type Controller,
  type PlanContext,
  type PlanRun,
  type TickResult,
} from '../plans/plan-runner.js';
import { DEFAULT_FLAG } from '../state/flags.js';
import { confirm } from './confirm.js';
import { configuredWebhook, startConfiguredNotifier } from '../runtime/notifier.js';
import { renderPreflight, runPreflight } from './checks.js';
import { actorOf, withContext, type CommandContext } from './context.js';
import { formatTable, printJson, printLines } from './output.js';
import { lockUrl, withServices, type Services } from '../runtime/services.js';
import { registryOption } from './options.js';

interface PlanFlags {
  type?: string;
  force?: boolean;
  actor?: string;
  registry?: string;
  tickMs?: string;
}

async function planContext(context: CommandContext, services: Services, flags: PlanFlags, withBoss: boolean): Promise<PlanContext> {
  return {
    pool: services.pool,
    databaseUrl: lockUrl(context),
    registry: services.registry,
    table: services.table,
    log: context.log,
    actor: actorOf(flags),
    settleMs: context.config.flagTtlMs,
    ...(withBoss ? { boss: await services.boss() } : {}),
  };
}

export function runLine(run: PlanRun): string {
  const step = run.plan.steps[run.currentStep];
  const where = step ? `step ${run.currentStep + 1}/${run.plan.steps.length}: ${describeStep(step)}` : 'all steps done';
  return `${run.planName} (${run.jobType}) ${run.state}, ${where}${run.reason ? ` — ${run.reason}` : ''}`;
}

function gatesText(gates: TickResult['gates']): string {
  return gates ? `gates ${gates.status}: ${gates.results.map((g) => `${g.gate} ${g.status}`).join(', ')}` : '';
}

function tickLine(result: TickResult): string {
  return `${new Date().toISOString()} ${result.event}: ${runLine(result.run)}${result.gates ? ` | ${gatesText(result.gates)}` : ''}`;
}

type RunStatus = PlanRun & { controller?: Controller | null; gates?: TickResult['gates'] };

/** The gates of an active run's analysis step, measured now; undefined on other steps. */
async function currentGates(context: PlanContext, run: PlanRun, pgbossInstalled: boolean): Promise<TickResult['gates']> {
  const step = run.plan.steps[run.currentStep];
  // Before any pg-boss process ran there is nothing to measure (and no pgboss.job to read).
  if (!step || !('analysis' in step) || !pgbossInstalled) return undefined;
  return evaluateStep(context, run);
}

/** A session lock names the controller's backend; a lease (behind a pooler) names its process and host. */
function controllerDetail(controller: NonNullable<RunStatus['controller']>): string {
  const application = controller.application ? `, ${controller.application}` : '';
  if (controller.kind === 'lease') return `lease held by ${controller.holder}${controller.since ? `, taken ${controller.since}` : ''}`;
  return `pid ${controller.pid}${application}${controller.since ? `, connected since ${controller.since}` : ''}`;
}

function statusLines(run: RunStatus): string[] {
  const lines = [runLine(run)];
  if (run.controller !== undefined) {
    lines.push(run.controller ? `  controller: attached (${controllerDetail(run.controller)})` : `  controller: none attached: nothing advances this plan; run 'cutover plan run <its file>' (or advance it by hand)`);
  }
  if (run.gates) {
    lines.push(`  gates now: ${run.gates.status}`);
    lines.push(...formatTable(['gate', 'status', 'measured (limit)'], run.gates.results.map((g) => [g.gate, g.status, g.detail])).map((line) => `    ${line}`));
  }
  return lines;
}

const PLAN_DIR = 'rollout';

/** `plan show` with no file: the plan files a team keeps in rollout/, each loaded and checked. */
async function showPlanFiles(json: boolean): Promise<void> {
  const names = await readdir(PLAN_DIR).catch((error: unknown) => {
    if (errorCode(error) === 'ENOENT') return [];
    throw new UsageError(`cannot read ${PLAN_DIR}/: ${errorCode(error) ?? messageOf(error)}`);
  });
  const files = names.filter((name) => /\.(ya?ml|json)$/.test(name)).sort().map((name) => join(PLAN_DIR, name));
  const plans = await Promise.all(
    files.map(async (file) => {
      try {
        const loaded = await loadPlan(file);
        return { file, name: loaded.name, jobType: loaded.jobType, steps: loaded.steps.length };
      } catch (error) {
        return { file, error: messageOf(error) };
      }
    }),
  );
  if (json) return printJson({ plans });
  if (!plans.length) return printLines([`no plan files in ${PLAN_DIR}/ here; write one (RUNBOOK.md §2) or give a file: cutover plan show <file>`]);
  printLines([
    ...formatTable(['file', 'plan', 'job type', 'steps'], plans.map((p) => ('error' in p ? [p.file, `INVALID: ${p.error}`, '', ''] : [p.file, p.name, p.jobType, p.steps]))),
    '',
    'cutover plan show <file> prints the steps of one',
  ]);
}

async function requireActive(services: Services, type: string | undefined): Promise<PlanRun> {
  const run = await activeRun(services.pool, type);
  if (!run) throw new UsageError(`no active rollout plan${type ? ` for ${type}` : ''}; start one with 'cutover plan start <file>'`);
  return run;
}

/** `--actor` and `--registry`, in that order, for the plan subcommands that act. */
function planActorOptions(command: Command): Command {
  return command.option('--actor <name>', 'who, for the audit log (default: the OS user)').addOption(registryOption());
}

function registerPlanShowCommand(plan: Command): void {
  plan
    .command('show')
    .description(`the steps of a plan file, and its gates in words; without a file, the plans in ${PLAN_DIR}/`)
    .argument('[file]')
    .action(async (file: string | undefined, _flags: PlanFlags, command: Command) => {
      const json = command.optsWithGlobals<{ json?: boolean }>().json === true;
      if (file === undefined) return showPlanFiles(json);
      const loaded = await loadPlan(file);
      if (json) return printJson(loaded);
      printLines([`${loaded.name} (job type ${loaded.jobType}):`, ...loaded.steps.map((step, i) => `  ${i + 1}. ${describeStep(step)}`)]);
    });
}

function registerPlanStartCommand(plan: Command): void {
  planActorOptions(plan.command('start').description('create the run of a plan after a passing preflight (a controller drives it: cutover plan run)').argument('<file>'))
    .option('--skip-preflight', 'start even if preflight fails (logged)')
    .action(async (file: string, flags: PlanFlags & { skipPreflight?: boolean }, command: Command) => {
      const loaded = await loadPlan(file);
      await withContext(command, async (context) => {
        await withServices(context, { registry: flags.registry }, async (services) => {
          const report = await runPreflight(context, services, { since: 30 * 86_400, ...(loaded.jobType === DEFAULT_FLAG ? {} : { type: [loaded.jobType] }) });
          const failed = report.checks.filter((check) => check.status === 'fail');
          if (failed.length && !flags.skipPreflight) {
            if (!context.json) printLines(renderPreflight(report));
            throw new CheckFailedError(`preflight fails (${failed.map((c) => `${c.check}${c.type ? ` ${c.type}` : ''}: ${c.value}`).join('; ')}): fix it, or pass --skip-preflight; nothing changed`);
          }
          if (failed.length) context.log.warn({ failed: failed.map((c) => `${c.check} ${c.type ?? ''}`.trim()) }, 'preflight failed; starting the plan anyway (--skip-preflight)');
          const run = await startPlan(await planContext(context, services, flags, false), loaded);
          if (context.json) return printJson({ run, preflight: report });
          printLines([runLine(run)]);
        });
      });
    });
}

function registerPlanStatusCommand(plan: Command): void {
  plan
    .command('status')
    .description('active and recent plan runs; for an active one, its controller and its gates now')
    .addOption(registryOption())
    .action(async (flags: PlanFlags, command: Command) => {
      await withContext(command, async (context) => {
        await withServices(context, { registry: flags.registry }, async (services) => {
          const state = await readState(services.pool, services.table, { parts: ['plans'], types: [], plans: { recent: 10 } });
          const planContextNow = await planContext(context, services, flags, false);
          const detailed = await Promise.all(
            state.plans.map(planRunOf).map(async ({ controller, ...run }) =>
              run.state === 'running' || run.state === 'paused'
                ? { ...run, controller, gates: await currentGates(planContextNow, run, state.pgbossInstalled) }
                : run,
            ),
          );
          if (context.json) return printJson({ runs: detailed });
          printLines(detailed.length ? detailed.flatMap(statusLines) : ['no plan has run']);
        });
      });
    });
}

function registerPlanAdvanceCommand(plan: Command): void {
  planActorOptions(plan.command('advance').description('next step now (an analysis step needs passing gates, or --force)'))
    .option('--type <type>', 'the plan of this job type, when several are active')
    .option('--force', 'skip failing or inconclusive gates (audited)')
    .action(async (flags: PlanFlags, command: Command) => {
      const { yes } = command.optsWithGlobals<{ yes?: boolean }>();
      await withContext(command, async (context) => {
        await withServices(context, { registry: flags.registry }, async (services) => {
          const run = await requireActive(services, flags.type);
          if (!(await confirm(`advance ${run.planName} past step ${run.currentStep + 1}`, yes ?? false))) throw new UsageError('not confirmed; nothing changed');
          const result = await advancePlan(await planContext(context, services, flags, false), run, { force: flags.force ?? false });
          if (context.json) return printJson(result);
          printLines([tickLine(result)]);
        });
      });
    });
}

function registerPlanAbortCommand(plan: Command): void {
  planActorOptions(plan.command('abort').description('roll back now and end the plan'))
    .option('--type <type>', 'the plan of this job type, when several are active')
    .action(async (flags: PlanFlags, command: Command) => {
      const { yes } = command.optsWithGlobals<{ yes?: boolean }>();
      await withContext(command, async (context) => {
        await withServices(context, { registry: flags.registry }, async (services) => {
          const run = await requireActive(services, flags.type);
          if (!(await confirm(`abort ${run.planName} and roll ${run.jobType} back to legacy`, yes ?? false))) throw new UsageError('not confirmed; nothing changed');
          const result = await abortPlan(await planContext(context, services, flags, true), run, `aborted by ${actorOf(flags)}`);
          if (context.json) return printJson(result);
          printLines([tickLine(result)]);
        });
      });
    });
}

function registerPlanRunCommand(plan: Command): void {
  planActorOptions(plan.command('run').description('drive a plan to its end (survives restarts; one controller per plan)').argument('<file>'))
    .option('--tick-ms <ms>', 'how often the controller checks', '1000')
    .action(async (file: string, flags: PlanFlags, command: Command) => {
      const loaded = await loadPlan(file);
      const tickMs = Number(flags.tickMs);
      if (!Number.isInteger(tickMs) || tickMs < 50) throw new UsageError(`--tick-ms must be an integer of at least 50, got '${flags.tickMs}'`);
      let lastShown = '';
      await withContext(command, async (context) => {
        const webhook = configuredWebhook(context.project);
        await withServices(context, { registry: flags.registry }, async (services) => {
          // Beside the controller, not in it: a webhook that is down never delays a step or an abort.
          const notifier = startConfiguredNotifier(webhook, { url: context.db.url, log: context.log });
          let run: PlanRun;
          try {
            run = await runPlan(await planContext(context, services, flags, true), loaded, {
              signal: context.signal,
              tickMs,
              onTick: (result) => {
                if (context.json) return;
                // A paused or waiting plan ticks every --tick-ms: a line only when something changed.
                const shown = `${result.event} ${runLine(result.run)} ${gatesText(result.gates)}`;
                if (shown === lastShown || (result.event === 'waiting' && !result.gates)) return;
                lastShown = shown;
                printLines([tickLine(result)]);
              },
            });
          } finally {
            // The controller's last events (a completion, an abort) go out before the process ends, bounded.
            await notifier?.stop();
          }
          if (context.json) printJson({ run });
          if (run.state === 'aborted') throw new CheckFailedError(`plan aborted: ${run.reason ?? 'no reason'}`);
        });
      });
    });
}

export function registerPlanCommands(program: Command): void {
  const plan = program.command('plan').description('rollout plans: ramp step by step, advance only while gates pass');
  registerPlanShowCommand(plan);
  registerPlanStartCommand(plan);
  registerPlanStatusCommand(plan);
  registerPlanAdvanceCommand(plan);
  registerPlanAbortCommand(plan);
  registerPlanRunCommand(plan);
}
