import type { Command } from 'commander';
import { registerMigrateCommand } from './migrate.js';
import { registerRollbackCommand } from './rollback.js';

/** `migrate` and `rollback`, in that order: kept for main.ts until it registers the two itself. */
export function registerOpsCommands(program: Command): void {
  registerMigrateCommand(program);
  registerRollbackCommand(program);
}
