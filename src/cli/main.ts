#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { CutoverError, messageOf } from '../support/errors.js';
import { redactSecrets } from '../support/log.js';
import { registerDbCommands } from './db.js';
import { registerStatusCommand } from './status.js';
import { registerWorkerCommand } from './worker.js';
import { registerEnqueueCommand } from './enqueue.js';
import { registerRolloutCommands } from './rollout.js';
import { registerDlqCommands } from './dlq.js';
import { registerOpsCommands } from './ops.js';
import { registerReconcileCommand } from './reconcile.js';
import { registerPlanCommands } from './plan.js';
import { registerDemoCommand } from './demo.js';
import { registerInitCommand } from './init.js';
import { registerRolloutEndCommands } from './rollout-end.js';
import { registerJobsCommand } from './jobs.js';
import { registerDashboardCommand } from './dashboard.js';
import { registerMetricsCommand } from './metrics.js';
import { registerNotifyCommand } from './notify.js';

export function buildProgram(): Command {
  const program = new Command('cutover')
    .description('move a legacy Postgres job table onto pg-boss, with a way back at every step')
    .option('--config <file>', 'cutover config: your legacy table\'s adapter and job registry (default: cutover.config.{ts,mjs,js} here, else the generic Job table)')
    .option('--database-url <url>', 'Postgres connection string (default: DATABASE_URL, else the embedded Postgres in .cutover/)')
    .option('--json', 'print one JSON document on stdout; logs stay on stderr')
    .option('--yes', 'do destructive actions without asking')
    .option('--verbose', 'debug logs and stack traces')
    // One line per error (the contract), with the hint on it. Commander quotes what it rejects:
    // a mistyped `--databse-url=mysql://root:pw@h` would print the password.
    .configureOutput({ outputError: (text, write) => write(`${redactSecrets(text).trimEnd()} (run with --help for usage)\n`) })
    .exitOverride();
  registerInitCommand(program);
  registerDbCommands(program);
  registerStatusCommand(program);
  registerEnqueueCommand(program);
  registerJobsCommand(program);
  registerRolloutCommands(program);
  registerDlqCommands(program);
  registerOpsCommands(program);
  registerReconcileCommand(program);
  registerPlanCommands(program);
  registerRolloutEndCommands(program);
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

async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv as string[]);
    return 0;
  } catch (error) {
    const code = exitCodeFor(error);
    // Commander has already printed its own usage errors.
    if (!(error instanceof CommanderError)) {
      process.stderr.write(`cutover: ${describe(error)}\n`);
      if (argv.includes('--verbose') && error instanceof Error && error.stack) process.stderr.write(`${redactSecrets(error.stack)}\n`);
    }
    return code;
  }
}

process.exitCode = await main(process.argv);
// Everything is closed by now; should a stray handle keep the loop alive, don't hang the shell.
setTimeout(() => process.exit(), 5000).unref();
