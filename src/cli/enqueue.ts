import type { Command } from 'commander';
import { createPool } from '../db/pool.js';
import { maxAttempts } from '../jobs/define.js';
import { loadRegistry } from '../jobs/registry.js';
import { insertLegacyRows } from '../legacy/enqueue.js';
import { withContext } from './context.js';
import { integerIn, jsonValue } from './parse.js';
import { printJson, printLines } from './output.js';

interface EnqueueOptions {
  count: number;
  priority: number;
  registry?: string;
}

export function registerEnqueueCommand(program: Command): void {
  program
    .command('enqueue')
    .description('add jobs (validated against the job registry; nothing is written if any is invalid)')
    .argument('<type>', 'job type, e.g. evaluation.process')
    .argument('<payload-json>', 'the payload as JSON', jsonValue)
    .option('--count <n>', 'how many copies', integerIn(1, 1_000_000), 1)
    .option('--priority <p>', 'higher runs first', integerIn(-1_000_000, 1_000_000), 0)
    .option('--registry <module>', 'job registry module (default: the demo jobs)')
    .action(async (type: string, payload: unknown, options: EnqueueOptions, command: Command) => {
      const registry = await loadRegistry(options.registry);
      const parsed = await registry.validate(type, payload);
      const definition = registry.require(type);
      await withContext(command, async ({ db, json }) => {
        const pool = createPool(db.url, { max: 1 });
        const client = await pool.connect();
        try {
          const rows = Array.from({ length: options.count }, () => ({ type, payload: parsed, priority: options.priority, maxAttempts: maxAttempts(definition) }));
          const ids: string[] = [];
          // All or nothing: one transaction, in statements of bounded size.
          await client.query('BEGIN');
          for (let offset = 0; offset < rows.length; offset += 5000) ids.push(...(await insertLegacyRows(client, rows.slice(offset, offset + 5000))));
          await client.query('COMMIT');
          if (json) return printJson({ enqueued: ids.length, engine: 'LEGACY', ids: ids.slice(0, 100) });
          printLines([`enqueued ${ids.length} ${type} job(s) on legacy${ids.length === 1 ? `: ${ids[0]}` : ''}`]);
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw error;
        } finally {
          client.release();
          await pool.end();
        }
      });
    });
}
