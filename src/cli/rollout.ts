import type { Command } from 'commander';
import { defaultActor } from '../db/audit.js';
import { changeFlag, DEFAULT_FLAG, parsePercent, readFlags } from '../rollout/flags.js';
import { rolloutHistory } from '../rollout/history.js';
import { withContext, type CommandContext } from './context.js';
import { integerIn } from './parse.js';
import { formatTable, printJson, printLines } from './output.js';
import { withServices, type Services } from './services.js';

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

export function registerRolloutCommands(program: Command): void {
  const rollout = program.command('rollout').description('the percentage of new jobs routed to pg-boss, per job type');
  const common = (command: Command) =>
    command
      .option('--type <type>', 'job type (default: * for every type without its own flag)')
      .option('--actor <name>', 'who is making the change (default: the OS user)')
      .option('--reason <text>', 'why, for the audit log')
      .option('--registry <module>', 'job registry module (default: the demo jobs)');

  rollout
    .command('get')
    .description('show the flags')
    .option('--type <type>', 'only this job type')
    .action(async (options: TypeOptions, command: Command) => {
      await withContext(command, async (context) => {
        await withServices(context, {}, async ({ pool }) => {
          const flags = [...(await readFlags(pool)).values()].filter((flag) => !options.type || flag.jobType === options.type);
          if (context.json) return printJson({ flags: flags.map((f) => ({ ...f, percent: f.basisPoints / 100 })), envOverride: context.config.envOverride });
          printLines(flags.length ? flags.map(describeFlag) : ['no flags: every job goes to legacy']);
        });
      });
    });

  common(rollout.command('set').description('route <percent> of new jobs to pg-boss (0-100, up to two decimals)').argument('<percent>'))
    .action(async (percent: string, options: TypeOptions, command: Command) => {
      const basisPoints = parsePercent(percent);
      await withContext(command, async (context) => {
        await flagTarget(context, options, async (jobType, { pool }) => {
          const { after } = await changeFlag(pool, { jobType, basisPoints }, { actor: options.actor ?? defaultActor(), action: 'flag.set', reason: options.reason ?? null });
          if (context.json) return printJson({ flag: after });
          printLines([describeFlag(after)]);
        });
      });
    });

  for (const [name, killSwitch, description] of [
    ['kill', true, 'kill switch: every new job of the type goes to legacy at once'],
    ['unkill', false, 'release the kill switch: routing by percentage resumes'],
  ] as const) {
    common(rollout.command(name).description(description)).action(async (options: TypeOptions, command: Command) => {
      await withContext(command, async (context) => {
        await flagTarget(context, options, async (jobType, { pool }) => {
          const { after } = await changeFlag(pool, { jobType, killSwitch }, { actor: options.actor ?? defaultActor(), action: `flag.${name}`, reason: options.reason ?? null });
          if (context.json) return printJson({ flag: after });
          printLines([describeFlag(after)]);
        });
      });
    });
  }

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
          const brief = (value: unknown) => (value === null ? '-' : JSON.stringify(value));
          printLines(
            formatTable(
              ['at', 'actor', 'action', 'type', 'before', 'after', 'reason'],
              events.map((e) => [e.at, e.actor, e.action, e.jobType ?? '-', brief(e.before), brief(e.after), e.reason ?? '']),
            ),
          );
        });
      });
    });
}
