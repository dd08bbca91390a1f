import { Option, type Command } from 'commander';
import { MAX_JOB_PROCESSES } from '../isolation/executor.js';
import { UsageError } from '../support/errors.js';
import { runWorker, WORKER_DATABASE_WAIT_SECONDS, type WorkerOptions } from '../runtime/worker.js';
import { summaryInterval } from '../runtime/worker-summary.js';
import { DEFAULT_PROBE_HOST } from '../runtime/probes.js';
import { withContext } from './context.js';
import { registryOption } from './options.js';
import { commaList, integerIn } from './parse.js';
import { printJson } from './output.js';

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run jobs on one engine until SIGTERM/SIGINT, then stop gracefully')
    .addOption(new Option('--engine <engine>', 'which engine to run').choices(['legacy', 'pgboss']).makeOptionMandatory())
    .option('--concurrency <n>', "jobs at once per job type (1-500, default 4; the legacy runner and isolation: 'process' types run at most 20, a process each)", integerIn(1, 500))
    .option('--poll-ms <ms>', 'legacy poll interval (default 1000)', integerIn(10, 60_000))
    .option('--types <a,b>', 'only these job types', commaList)
    .addOption(registryOption())
    .option('--shutdown-timeout <s>', 'seconds to let running jobs finish on shutdown', integerIn(0, 3600), 30)
    .option('--supervise-interval <s>', 'pg-boss: how often to expire and retry jobs of dead workers', integerIn(1, 3600), 30)
    .option('--probe-port <port>', 'serve health probes /livez, /readyz, /startupz on this port (1-65535)', integerIn(1, 65_535))
    // Every interface by default: in a container the kubelet or Compose probes the container's address, not its loopback.
    .option('--probe-host <host>', `the probes' address (default ${DEFAULT_PROBE_HOST}, every interface, as containers need)`)
    .action(async (options: Omit<WorkerOptions, 'summaryMs'>, command: Command) => {
      // Options of the other engine would be ignored; an operator who typed one expects it to count.
      if (options.engine === 'pgboss' && options.pollMs !== undefined) {
        throw new UsageError('--poll-ms is the legacy runner\'s poll interval; pg-boss workers are woken by LISTEN/NOTIFY: drop it, or use --engine legacy');
      }
      if (options.engine === 'legacy' && command.getOptionValueSource('superviseInterval') === 'cli') {
        throw new UsageError('--supervise-interval is for pg-boss workers (the legacy runner recovers stale rows by heartbeat): drop it, or use --engine pgboss');
      }
      if (options.engine === 'legacy' && (options.concurrency ?? 0) > MAX_JOB_PROCESSES) {
        throw new UsageError(`--concurrency ${options.concurrency}: the legacy runner runs each job in a child process of its own, at most ${MAX_JOB_PROCESSES} at once; run more legacy workers, or move the type to --engine pgboss`);
      }
      if (options.probeHost !== undefined && options.probePort === undefined) {
        throw new UsageError('--probe-host says where the probes listen; give --probe-port too, or drop it');
      }
      // Read before anything starts: a bad value is a usage error, not a worker that half-started.
      const summaryMs = summaryInterval();
      await withContext(command, async (context) => {
        const stats = await runWorker(context, { ...options, summaryMs });
        if (context.json) printJson(stats);
      }, { waitForDatabaseSeconds: WORKER_DATABASE_WAIT_SECONDS });
    });
}
