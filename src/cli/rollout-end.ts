import type { Command } from 'commander';
import { registerArchiveCommand } from './archive.js';
import { registerDrainReportCommand, registerPreflightCommand } from './checks.js';
import { registerFinalizeCommand } from './finalize.js';

/** `preflight`, `drain-report`, `finalize` and `archive`, in that order: kept for main.ts until it registers the four itself. */
export function registerRolloutEndCommands(program: Command): void {
  registerPreflightCommand(program);
  registerDrainReportCommand(program);
  registerFinalizeCommand(program);
  registerArchiveCommand(program);
}
