import { Option, type Command } from 'commander';
import { createPool } from '../db/pool.js';
import { UsageError } from '../support/errors.js';
import { bindLegacyTable } from '../table/table.js';
import { adoptedColumns, adoptionSql, prismaFields, runnerFilters, writeAdoptionMigration } from '../adopt/adopt.js';
import { DEFAULT_ROLE_PREFIX, roleSpecs, rolesSql, rolesTarget } from '../adopt/roles.js';
import { CONFIG_FILE_NAMES, loadConfigFile } from '../config/file.js';
import { globalOptions, withContext } from './context.js';
import { cliIo, printJson, printLines, printText } from './output.js';

interface InitOptions {
  out?: string;
  print?: boolean;
  prisma?: boolean;
  roles?: boolean;
  rolePrefix: string;
}

export function registerInitCommand(program: Command): void {
  program
    .command('init')
    .description("write the migration that adopts your legacy table (cutover's columns, indexes and tables); --roles prints least-privilege grants")
    .addOption(new Option('--out <file>', 'write the SQL here instead of <migrations>/<timestamp>_cutover_adopt/migration.sql').conflicts(['print', 'roles']))
    .addOption(new Option('--print', 'print the SQL on stdout and write nothing').conflicts(['roles', 'prisma']))
    .addOption(new Option('--prisma', 'print the fields, indexes and enum to add to your Prisma model, and write nothing').conflicts(['roles', 'out']))
    .option('--roles', 'print the SQL of the least-privilege group roles for the configured table (generic Job table without a config) and write nothing; RUNBOOK.md §8')
    .option('--role-prefix <prefix>', 'prefix of the group role names (with --roles)', DEFAULT_ROLE_PREFIX)
    .action(async (options: InitOptions, command: Command) => {
      if (options.roles) return printRoles(command, options);
      if (command.getOptionValueSource('rolePrefix') === 'cli') throw new UsageError('--role-prefix goes with --roles');
      await withContext(command, async ({ project, db, json }) => {
        if (!project.legacy) {
          throw new UsageError(
            `cutover init adopts the table a config file describes; none found (--config, or ${CONFIG_FILE_NAMES.join(', ')} in ${cliIo().cwd}). See RUNBOOK.md, "Adopting your table"; for least-privilege roles on the generic table: cutover init --roles`,
          );
        }
        const pool = createPool(db.url, { max: 1, applicationName: 'cutover-init' });
        try {
          // Every name in the adapter is checked now, before a migration that would fail is written.
          const table = await bindLegacyTable(pool, project.legacy, { requireCutoverColumns: false });
          if (options.print) return void printText(await adoptionSql(table, await adoptedColumns(project.migrationsDir)));
          if (options.prisma) return void printText(`${prismaFields(table, await adoptedColumns(project.migrationsDir))}\n`);
          const result = await writeAdoptionMigration(table, { migrationsDir: project.migrationsDir, ...(options.out ? { out: options.out } : {}) });
          if (json) return printJson({ table: table.label, ...result, runnerFilters: runnerFilters(table) });
          printLines([
            ...(result.written
              ? [`wrote ${result.path}`, 'next: cutover db migrate (or your own `prisma migrate deploy`), then `cutover init --prisma` for your Prisma model']
              : [`${table.label} is already adopted by ${result.path}: nothing written`]),
            '',
            `Your own runner must leave pg-boss's rows alone: add AND "engine" = 'LEGACY' to these queries (the guard trigger refuses them until then):`,
            ...runnerFilters(table).map((line) => `  ${line}`),
          ]);
        } finally {
          await pool.end();
        }
      });
    });
}

/**
 * The grants depend only on the table's name, so no database is opened (nor an embedded one
 * started): a security review can read them on any machine.
 */
async function printRoles(command: Command, options: InitOptions): Promise<void> {
  const project = await loadConfigFile(globalOptions(command).config);
  const target = rolesTarget(project.legacy);
  const sql = rolesSql(target, options.rolePrefix);
  if (globalOptions(command).json) {
    return printJson({ table: target.label, roles: roleSpecs(target, options.rolePrefix), sql });
  }
  printText(sql);
}
