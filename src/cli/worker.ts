import { Option, type Command } from 'commander';
import { createPool } from '../db/pool.js';
import { loadRegistry } from '../jobs/registry.js';
import { LegacyRunner } from '../legacy/runner.js';
import { UsageError } from '../errors.js';
import { withContext } from './context.js';
import { commaList, integerIn } from './parse.js';
import { printJson } from './output.js';

interface WorkerOptions {
  engine: 'legacy' | 'pgboss';
  concurrency?: number;
  pollMs?: number;
  types?: string[];
  registry?: string;
  shutdownTimeout: number;
}

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run jobs on one engine until SIGTERM/SIGINT, then stop gracefully')
    .addOption(new Option('--engine <engine>', 'which engine to run').choices(['legacy', 'pgboss']).makeOptionMandatory())
    .option('--concurrency <n>', 'jobs at once (1-20, default 4)', integerIn(1, 20))
    .option('--poll-ms <ms>', 'legacy poll interval (default 1000)', integerIn(10, 60_000))
    .option('--types <a,b>', 'only these job types', commaList)
    .option('--registry <module>', 'job registry module (default: the demo jobs)')
    .option('--shutdown-timeout <s>', 'seconds to let running jobs finish on shutdown', integerIn(0, 3600), 30)
    .action(async (options: WorkerOptions, command: Command) => {
      await withContext(command, async ({ db, log, json, signal }) => {
        const registry = await loadRegistry(options.registry);
        for (const type of options.types ?? []) registry.require(type);
        if (options.engine !== 'legacy') throw new UsageError('the pgboss engine is not available in this build yet');
        const pool = createPool(db.url, { max: 4, applicationName: 'cutover-legacy-runner' });
        try {
          const runner = new LegacyRunner({
            pool,
            databaseUrl: db.url,
            registry,
            log,
            shutdownTimeoutMs: options.shutdownTimeout * 1000,
            ...(options.concurrency ? { concurrency: options.concurrency } : {}),
            ...(options.pollMs ? { pollMs: options.pollMs } : {}),
            ...(options.types ? { types: options.types } : {}),
          });
          const stats = await runner.run(signal);
          if (json) printJson({ engine: options.engine, workerId: runner.workerId, ...stats });
        } finally {
          await pool.end();
        }
      });
    });
}
