import type { Command } from 'commander';
import { migrate, migrationStatus } from '../db/migrate.js';
import { migrationDirs } from '../adopt/adopt.js';
import { withContext } from './context.js';
import { formatTable, printJson, printLines } from './output.js';

export function registerDbCommands(program: Command): void {
  const db = program.command('db').description('the database schema: cutover tables and columns');

  db.command('migrate')
    .description('apply pending migrations (each once, in a transaction, under an advisory lock)')
    .action(async (_options, command: Command) => {
      await withContext(command, async ({ db: database, config, log, json, project }) => {
        // DDL on a session when there is one: a pooler may cut a long migration's transaction off (query_timeout, server_lifetime).
        const result = await migrate({ databaseUrl: config.directUrl ?? database.url, log, dirs: await migrationDirs(project) });
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
      await withContext(command, async ({ db: database, config, json, project }) => {
        const entries = await migrationStatus({ databaseUrl: config.directUrl ?? database.url, dirs: await migrationDirs(project) });
        if (json) return printJson({ migrations: entries });
        printLines(formatTable(['migration', 'state', 'applied at'], entries.map((e) => [e.name, e.state, e.appliedAt ?? '-'])));
      });
    });
}
