import type { Command } from 'commander';
import { createPool } from '../db/pool.js';
import { UsageError } from '../errors.js';
import { bindLegacyTable } from '../table/table.js';
import { adoptionSql, writeAdoptionMigration } from '../ops/adopt.js';
import { CONFIG_FILE_NAMES } from '../config-file.js';
import { withContext } from './context.js';
import { printJson, printLines } from './output.js';

export function registerInitCommand(program: Command): void {
  program
    .command('init')
    .description("write the migration that adopts your legacy table (cutover's columns, indexes and tables)")
    .option('--out <file>', 'write the SQL here instead of <migrations>/<timestamp>_cutover_adopt/migration.sql')
    .option('--print', 'print the SQL on stdout and write nothing')
    .action(async (options: { out?: string; print?: boolean }, command: Command) => {
      await withContext(command, async ({ project, db, json }) => {
        if (!project.legacy) {
          throw new UsageError(
            `cutover init adopts the table a config file describes; none found (--config, or ${CONFIG_FILE_NAMES.join(', ')} in ${process.cwd()}). See RUNBOOK.md, "Adopting your table"`,
          );
        }
        const pool = createPool(db.url, { max: 1, applicationName: 'cutover-init' });
        try {
          // Every name in the adapter is checked now, before a migration that would fail is written.
          const table = await bindLegacyTable(pool, project.legacy, { requireCutoverColumns: false });
          if (options.print) return void process.stdout.write(await adoptionSql(table));
          const result = await writeAdoptionMigration(table, { migrationsDir: project.migrationsDir, ...(options.out ? { out: options.out } : {}) });
          if (json) return printJson({ table: table.label, ...result });
          printLines(
            result.written
              ? [`wrote ${result.path}`, 'next: cutover db migrate (or your own `prisma migrate deploy`)']
              : [`${table.label} is already adopted by ${result.path}: nothing written`],
          );
        } finally {
          await pool.end();
        }
      });
    });
}
