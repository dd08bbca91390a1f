import type { Command } from 'commander';
import { readdir } from 'node:fs/promises';
import type { ProjectConfig } from '../config-file.js';
import { builtinMigrationsDir, migrate, migrationStatus } from '../db/migrate.js';
import { UsageError } from '../errors.js';
import { ADOPT_SUFFIX } from '../ops/adopt.js';
import { withContext } from './context.js';
import { formatTable, printJson, printLines } from './output.js';

/**
 * The generic table: cutover's built-in migrations. An adopted table: only the team's own
 * migrations directory, where `cutover init` wrote the whole cutover schema for it, so the
 * team's history alone (applied by this or by `prisma migrate deploy`) describes the database.
 */
async function migrationDirs(project: ProjectConfig): Promise<string[]> {
  if (!project.legacy) return [builtinMigrationsDir];
  const found = await readdir(project.migrationsDir).catch(() => undefined);
  if (!found?.some((name) => name.endsWith(ADOPT_SUFFIX))) {
    throw new UsageError(`${project.migrationsDir} holds no cutover adoption migration: run \`cutover init\` first`);
  }
  return [project.migrationsDir];
}

export function registerDbCommands(program: Command): void {
  const db = program.command('db').description('the database schema: cutover tables and columns');

  db.command('migrate')
    .description('apply pending migrations (each once, in a transaction, under an advisory lock)')
    .action(async (_options, command: Command) => {
      await withContext(command, async ({ db: database, log, json, project }) => {
        const result = await migrate({ databaseUrl: database.url, log, dirs: await migrationDirs(project) });
        if (json) return printJson(result);
        printLines(
          result.applied.length
            ? result.applied.map((name) => `applied ${name}`)
            : [`nothing to apply (${result.alreadyApplied.length} already applied)`],
        );
      });
    });

  db.command('status')
    .description('list migrations and whether each is applied, pending or modified')
    .action(async (_options, command: Command) => {
      await withContext(command, async ({ db: database, json, project }) => {
        const entries = await migrationStatus({ databaseUrl: database.url, dirs: await migrationDirs(project) });
        if (json) return printJson({ migrations: entries });
        printLines(formatTable(['migration', 'state', 'applied at'], entries.map((e) => [e.name, e.state, e.appliedAt ?? '-'])));
      });
    });
}
