import type { Command } from 'commander';
import { CheckFailedError, UsageError } from '../errors.js';
import { defaultActor } from '../db/audit.js';
import { describeStep, loadPlan } from '../plans/plan.js';
import { abortPlan, activeRun, advancePlan, recentRuns, runPlan, startPlan, type PlanContext, type PlanRun, type TickResult } from '../plans/plan-runner.js';
import { confirm } from './confirm.js';
import { withContext, type CommandContext } from './context.js';
import { printJson, printLines } from './output.js';
import { withServices, type Services } from './services.js';

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
    databaseUrl: context.db.url,
    registry: services.registry,
    table: services.table,
    log: context.log,
    actor: flags.actor ?? defaultActor(),
    settleMs: context.config.flagTtlMs,
    ...(withBoss ? { boss: await services.boss() } : {}),
  };
}

function runLine(run: PlanRun): string {
  const step = run.plan.steps[run.currentStep];
  const where = step ? `step ${run.currentStep + 1}/${run.plan.steps.length}: ${describeStep(step)}` : 'all steps done';
  return `${run.planName} (${run.jobType}) ${run.state}, ${where}${run.reason ? ` — ${run.reason}` : ''}`;
}

function tickLine(result: TickResult): string {
  const gates = result.gates ? ` | gates ${result.gates.status}: ${result.gates.results.map((g) => `${g.gate} ${g.status}`).join(', ')}` : '';
  return `${new Date().toISOString()} ${result.event}: ${runLine(result.run)}${gates}`;
}

async function requireActive(services: Services, type: string | undefined): Promise<PlanRun> {
  const run = await activeRun(services.pool, type);
  if (!run) throw new UsageError(`no active rollout plan${type ? ` for ${type}` : ''}; start one with 'cutover plan start <file>'`);
  return run;
}

export function registerPlanCommands(program: Command): void {
  const plan = program.command('plan').description('rollout plans: ramp step by step, advance only while gates pass');
  const common = (command: Command) =>
    command.option('--actor <name>', 'who, for the audit log (default: the OS user)').option('--registry <module>', 'job registry module (default: the demo jobs)');

  plan
    .command('show')
    .description('the steps of a plan file, and its gates in words')
    .argument('<file>')
    .action(async (file: string, _flags: PlanFlags, command: Command) => {
      const loaded = await loadPlan(file);
      if (command.optsWithGlobals<{ json?: boolean }>().json) return printJson(loaded);
      printLines([`${loaded.name} (job type ${loaded.jobType}):`, ...loaded.steps.map((step, i) => `  ${i + 1}. ${describeStep(step)}`)]);
    });

  common(plan.command('start').description('create the run of a plan (a controller drives it: cutover plan run)').argument('<file>')).action(
    async (file: string, flags: PlanFlags, command: Command) => {
      const loaded = await loadPlan(file);
      await withContext(command, async (context) => {
        await withServices(context, { registry: flags.registry }, async (services) => {
          const run = await startPlan(await planContext(context, services, flags, false), loaded);
          if (context.json) return printJson({ run });
          printLines([runLine(run)]);
        });
      });
    },
  );

  plan
    .command('status')
    .description('active and recent plan runs')
    .action(async (_flags: PlanFlags, command: Command) => {
      await withContext(command, async (context) => {
        await withServices(context, {}, async ({ pool }) => {
          const runs = await recentRuns(pool);
          if (context.json) return printJson({ runs });
          printLines(runs.length ? runs.map(runLine) : ['no plan has run']);
        });
      });
    });

  common(plan.command('advance').description('next step now (an analysis step needs passing gates, or --force)'))
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

  common(plan.command('abort').description('roll back now and end the plan'))
    .option('--type <type>', 'the plan of this job type, when several are active')
    .action(async (flags: PlanFlags, command: Command) => {
      const { yes } = command.optsWithGlobals<{ yes?: boolean }>();
      await withContext(command, async (context) => {
        await withServices(context, { registry: flags.registry }, async (services) => {
          const run = await requireActive(services, flags.type);
          if (!(await confirm(`abort ${run.planName} and roll ${run.jobType} back to legacy`, yes ?? false))) throw new UsageError('not confirmed; nothing changed');
          const result = await abortPlan(await planContext(context, services, flags, true), run, `aborted by ${flags.actor ?? defaultActor()}`);
          if (context.json) return printJson(result);
          printLines([tickLine(result)]);
        });
      });
    });

  common(plan.command('run').description('drive a plan to its end (survives restarts; one controller per plan)').argument('<file>'))
    .option('--tick-ms <ms>', 'how often the controller checks', '1000')
    .action(async (file: string, flags: PlanFlags, command: Command) => {
      const loaded = await loadPlan(file);
      const tickMs = Number(flags.tickMs);
      if (!Number.isInteger(tickMs) || tickMs < 50) throw new UsageError(`--tick-ms must be an integer of at least 50, got '${flags.tickMs}'`);
      await withContext(command, async (context) => {
        await withServices(context, { registry: flags.registry }, async (services) => {
          const run = await runPlan(await planContext(context, services, flags, true), loaded, {
            signal: context.signal,
            tickMs,
            onTick: (result) => {
              if (!context.json && result.event !== 'waiting') printLines([tickLine(result)]);
            },
          });
          if (context.json) printJson({ run });
          if (run.state === 'aborted') throw new CheckFailedError(`plan aborted: ${run.reason ?? 'no reason'}`);
        });
      });
    });

}
