import type { Command } from 'commander';
import { UsageError } from '../support/errors.js';
import { changeFlag, DEFAULT_FLAG, parsePercent, readFlags, removeFlag } from '../state/flags.js';
import { describeChange, rolloutHistory } from '../state/history.js';
import { actorOf, withContext, type CommandContext } from './context.js';
import { integerIn } from './parse.js';
import { formatTable, printJson, printLines } from './output.js';
import { withServices, type Services } from '../runtime/services.js';
import { registryOption } from './options.js';

interface TypeOptions {
  type?: string;
  actor?: string;
  reason?: string;
  registry?: string;
}

/** `*` or a type the registry knows: a typo must not create a flag nobody reads. */
async function flagTarget(context: CommandContext, options: TypeOptions, run: (jobType: string, services: Services) => Promise<void>): Promise<void> {
  await withServices(context, { registry: options.registry }, async (services) => {
    const jobType = options.type ?? DEFAULT_FLAG;
    if (jobType !== DEFAULT_FLAG) services.registry.require(jobType);
    await run(jobType, services);
  });
}

function describeFlag(flag: { jobType: string; basisPoints: number; killSwitch: boolean }): string {
  return `${flag.jobType}: ${flag.basisPoints / 100}% to pg-boss${flag.killSwitch ? ', KILL SWITCH ON (all to legacy)' : ''}`;
}

/** A history row stays one readable line; --json has the whole event. */
const clip = (text: string) => (text.length > 80 ? `${text.slice(0, 79)}…` : text);

/** `--type`, `--actor`, `--reason` and `--registry`, in that order, for the subcommands that change a flag. */
function flagChangeOptions(command: Command): Command {
  return command
    .option('--type <type>', 'job type (default: * for every type without its own flag)')
    .option('--actor <name>', 'who is making the change (default: the OS user)')
    .option('--reason <text>', 'why, for the audit log')
    .addOption(registryOption());
}

function registerRolloutGetCommand(rollout: Command): void {
  rollout
    .command('get')
    .description('show the flags')
    .option('--type <type>', 'only this job type')
    .action(async (options: TypeOptions, command: Command) => {
      await withContext(command, async (context) => {
        await withServices(context, {}, async ({ pool }) => {
          const all = await readFlags(pool);
          const flags = [...all.values()].filter((flag) => !options.type || flag.jobType === options.type);
          if (context.json) return printJson({ flags: flags.map((f) => ({ ...f, percent: f.basisPoints / 100 })), envOverride: context.config.envOverride });
          // What actually routes: a global kill switch or an environment override beats a type's own flag.
          const globalKill = all.get(DEFAULT_FLAG)?.killSwitch === true;
          const { percent, usePgboss } = context.config.envOverride;
          printLines([
            ...(flags.length
              ? flags.map((flag) => `${describeFlag(flag)}${globalKill && flag.jobType !== DEFAULT_FLAG ? ' — overridden: the * kill switch is on, every job goes to legacy' : ''}`)
              : ['no flags: every job goes to legacy']),
            ...(usePgboss === false ? ['environment override: USE_PGBOSS=false routes every job to legacy, whatever the flags say'] : []),
            ...(percent !== undefined && usePgboss !== false ? [`environment override: PGBOSS_ROLLOUT_PERCENTAGE=${percent} routes ${percent}% of jobs without a kill switch, whatever the flags say`] : []),
          ]);
        });
      });
    });
}

function registerRolloutSetCommand(rollout: Command): void {
  flagChangeOptions(rollout.command('set').description('route <percent> of new jobs to pg-boss (0-100, up to two decimals)').argument('<percent>'))
    .option('--unfinalize', 'end a finalized type\'s pinning to pg-boss (cutover finalize) to route it below 100 %')
    .action(async (percent: string, options: TypeOptions & { unfinalize?: boolean }, command: Command) => {
      const basisPoints = parsePercent(percent);
      await withContext(command, async (context) => {
        await flagTarget(context, options, async (jobType, { pool }) => {
          const change = { jobType, basisPoints, ...(options.unfinalize ? { unfinalize: true } : {}) };
          const { after } = await changeFlag(pool, change, { actor: actorOf(options), action: 'flag.set', reason: options.reason ?? null });
          if (context.json) return printJson({ flag: after });
          printLines([describeFlag(after)]);
        });
      });
    });
}

/** `kill` and `unkill`, in that order. */
function registerKillSwitchCommands(rollout: Command): void {
  for (const [name, killSwitch, description] of [
    ['kill', true, 'kill switch: every new job of the type goes to legacy at once'],
    ['unkill', false, 'release the kill switch: routing by percentage resumes'],
  ] as const) {
    flagChangeOptions(rollout.command(name).description(description)).action(async (options: TypeOptions, command: Command) => {
      await withContext(command, async (context) => {
        await flagTarget(context, options, async (jobType, { pool }) => {
          const { after } = await changeFlag(pool, { jobType, killSwitch }, { actor: actorOf(options), action: `flag.${name}`, reason: options.reason ?? null });
          if (context.json) return printJson({ flag: after });
          printLines([describeFlag(after)]);
        });
      });
    });
  }
}

function registerRolloutUnsetCommand(rollout: Command): void {
  flagChangeOptions(rollout.command('unset').description("remove a job type's own flag: the type follows * again"))
    .option('--unfinalize', 'also end its finalization (cutover finalize)')
    .action(async (options: TypeOptions & { unfinalize?: boolean }, command: Command) => {
      if (!options.type) throw new UsageError('rollout unset needs --type <type>: the * flag stays (set it to 0 instead)');
      await withContext(command, async (context) => {
        await flagTarget(context, options, async (jobType, { pool }) => {
          const removed = await removeFlag(pool, jobType, { actor: actorOf(options), reason: options.reason ?? null, unfinalize: options.unfinalize ?? false });
          if (context.json) return printJson({ removed });
          printLines([removed ? `${jobType}: own flag removed (was ${describeFlag(removed)}); it follows * now` : `${jobType} has no flag of its own: it follows * already`]);
        });
      });
    });
}

function registerRolloutHistoryCommand(rollout: Command): void {
  rollout
    .command('history')
    .description('the audit log of flag changes and operator actions')
    .option('--type <type>', 'only this job type')
    .option('--limit <n>', 'how many events', integerIn(1, 100_000), 50)
    .action(async (options: { type?: string; limit: number }, command: Command) => {
      await withContext(command, async (context) => {
        await withServices(context, {}, async ({ pool }) => {
          const events = await rolloutHistory(pool, options);
          if (context.json) return printJson({ events });
          printLines(
            events.length
              ? formatTable(
                  ['when (UTC)', 'who', 'action', 'type', 'change', 'why'],
                  events.map((e) => [e.at.replace('T', ' ').replace(/\.\d+Z$/, ''), e.actor, e.action, e.jobType ?? '-', clip(describeChange(e.before, e.after)), e.reason ?? '']),
                )
              : ['no events yet'],
          );
        });
      });
    });
}

export function registerRolloutCommands(program: Command): void {
  const rollout = program.command('rollout').description('the percentage of new jobs routed to pg-boss, per job type');
  registerRolloutGetCommand(rollout);
  registerRolloutSetCommand(rollout);
  registerKillSwitchCommands(rollout);
  registerRolloutUnsetCommand(rollout);
  registerRolloutHistoryCommand(rollout);
}
