// The CLI's commands; main.ts is the binary's entry, which checks the Node version before any
// of this (commander among it) is loaded.
import { Readable } from 'node:stream';
import { Command, CommanderError } from 'commander';
import { CutoverError, messageOf } from '../support/errors.js';
import { redactSecrets } from '../support/log.js';
import { registerDbCommands } from './db.js';
import { registerStatusCommand } from './status.js';
import { registerWorkerCommand } from './worker.js';
import { registerEnqueueCommand } from './enqueue.js';
import { registerRolloutCommands } from './rollout.js';
import { registerDlqCommands } from './dlq.js';
import { registerMigrateCommand } from './migrate.js';
import { registerRollbackCommand } from './rollback.js';
import { registerReconcileCommand } from './reconcile.js';
import { registerPlanCommands } from './plan.js';
import { registerDemoCommand } from './demo.js';
import { registerInitCommand } from './init.js';
import { registerDrainReportCommand, registerPreflightCommand } from './checks.js';
import { registerFinalizeCommand } from './finalize.js';
import { registerArchiveCommand } from './archive.js';
import { registerJobsCommand } from './jobs.js';
import { registerDashboardCommand } from './dashboard.js';
import { registerMetricsCommand } from './metrics.js';
import { registerNotifyCommand } from './notify.js';
import { directUrlOption } from './options.js';
import { cliIo, withCliIo, type CliIo, type CliOutput } from './output.js';

export function buildProgram(): Command {
  const program = new Command('cutover')
    .description('move a legacy Postgres job table onto pg-boss, with a way back at every step')
    .option('--config <file>', 'cutover config: your legacy table\'s adapter and job registry (default: cutover.config.{ts,mjs,js} here, else the generic Job table)')
    .option('--database-url <url>', 'Postgres connection string (default: DATABASE_URL, else the embedded Postgres in .cutover/)')
    .addOption(directUrlOption())
    .option('--json', 'print one JSON document on stdout; logs stay on stderr')
    .option('--yes', 'do destructive actions without asking')
    .option('--verbose', 'debug logs and stack traces')
    // One line per error (the contract), with the hint on it. Commander quotes what it rejects:
    // a mistyped `--databse-url=mysql://root:pw@h` would print the password.
    .configureOutput({
      outputError: (text, write) => write(`${redactSecrets(text).trimEnd()} (run with --help for usage)\n`),
      // Commander's defaults, read from this run's io instead of the process's streams.
      writeOut: (text) => void cliIo().stdout.write(text),
      writeErr: (text) => void cliIo().stderr.write(text),
      getOutHelpWidth: () => helpWidth(cliIo().stdout),
      getErrHelpWidth: () => helpWidth(cliIo().stderr),
      getOutHasColors: () => hasColors(cliIo().stdout, cliIo().env),
      getErrHasColors: () => hasColors(cliIo().stderr, cliIo().env),
    })
    .exitOverride();
  registerInitCommand(program);
  registerDbCommands(program);
  registerStatusCommand(program);
  registerEnqueueCommand(program);
  registerJobsCommand(program);
  registerRolloutCommands(program);
  registerDlqCommands(program);
  registerMigrateCommand(program);
  registerRollbackCommand(program);
  registerReconcileCommand(program);
  registerPlanCommands(program);
  registerPreflightCommand(program);
  registerDrainReportCommand(program);
  registerFinalizeCommand(program);
  registerArchiveCommand(program);
  registerDemoCommand(program);
  registerWorkerCommand(program);
  registerDashboardCommand(program);
  registerMetricsCommand(program);
  registerNotifyCommand(program);
  for (const command of program.commands) command.exitOverride();
  return program;
}

/** Error classes to exit codes, in one place (DESIGN §8). */
export function exitCodeFor(error: unknown): number {
  if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
  if (error instanceof CutoverError) return error.exitCode;
  // Anything unforeseen (a driver error mid-command, a bug) is a runtime failure.
  return 3;
}

function describe(error: unknown): string {
  // Redacted whole before the first line is taken: a quoted password can span lines.
  return redactSecrets(messageOf(error)).split('\n')[0] ?? '';
}

/** Commander's own rule: the terminal's width, else none (commander then wraps at 80). */
function helpWidth(output: CliOutput): number {
  // Commander's types promise a number; its own default returns undefined off a terminal too.
  return (output.isTTY ? output.columns : undefined) as number;
}

/** Commander's own rule (NO_COLOR, FORCE_COLOR, CLICOLOR_FORCE, else a colour terminal), on this run's environment. */
function hasColors(output: CliOutput, env: NodeJS.ProcessEnv): boolean {
  if (env.NO_COLOR || env.FORCE_COLOR === '0' || env.FORCE_COLOR === 'false') return false;
  if (env.FORCE_COLOR || env.CLICOLOR_FORCE !== undefined) return true;
  return output.isTTY === true && output.hasColors?.() === true;
}

/** What runProgram reads and writes; without stdin, an empty one (never the caller's own). @defaultValue cwd: process.cwd() */
export interface ProgramIo {
  stdout: CliOutput;
  stderr: CliOutput;
  stdin?: CliIo['stdin'];
  env: NodeJS.ProcessEnv;
  cwd?: string;
}

/**
 * Runs `cutover <argv>` (the arguments after the program's name) and resolves to its exit
 * code; it never exits the process. Output, logs, environment and working directory are those
 * of `io`, so a caller (the tests) can run many commands in one process, even at once.
 */
export async function runProgram(argv: readonly string[], io: ProgramIo): Promise<number> {
  const runIo: CliIo = { stdout: io.stdout, stderr: io.stderr, stdin: io.stdin ?? Readable.from([]), env: io.env, cwd: io.cwd ?? process.cwd() };
  return withCliIo(runIo, async () => {
    const program = buildProgram();
    try {
      await program.parseAsync(argv as string[], { from: 'user' });
      return 0;
    } catch (error) {
      const code = exitCodeFor(error);
      // Commander has already printed its own usage errors.
      if (!(error instanceof CommanderError)) {
        runIo.stderr.write(`cutover: ${describe(error)}\n`);
        if (argv.includes('--verbose') && error instanceof Error && error.stack) runIo.stderr.write(`${redactSecrets(error.stack)}\n`);
      }
      return code;
    }
  });
}
