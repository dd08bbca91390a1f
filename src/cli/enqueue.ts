import type { Command } from 'commander';
import { ensureQueues } from '../pgboss/queues.js';
import type { EnqueueResult } from '../rollout/manager.js';
import { withContext } from './context.js';
import { integerIn, readPayload } from './parse.js';
import { cliIo, printJson, printLines } from './output.js';
import { withServices } from '../runtime/services.js';
import { registryOption } from './options.js';

interface EnqueueOptions {
  count: number;
  priority: number;
  key?: string;
  registry?: string;
}

export function registerEnqueueCommand(program: Command): void {
  program
    .command('enqueue')
    .description('add jobs, routed by the rollout flags (validated first: nothing is written if the payload is invalid)')
    .argument('<type>', 'job type, e.g. evaluation.process')
    .argument('<payload-json>', "the payload as JSON; '-' reads it from stdin, '@file' from a file (at most 1 MiB)")
    .option('--count <n>', 'how many copies', integerIn(1, 1_000_000), 1)
    .option('--priority <p>', 'higher runs first', integerIn(-1_000_000, 1_000_000), 0)
    .option('--key <key>', 'sticky routing key (default: each job id)')
    .addOption(registryOption())
    .action(async (type: string, payloadArgument: string, options: EnqueueOptions, command: Command) => {
      const payload = await readPayload(payloadArgument, cliIo().stdin);
      await withContext(command, async (context) => {
        await withServices(context, { registry: options.registry }, async ({ registry, boss, manager }) => {
          // Everything about the input is checked before pg-boss starts: starting it may install
          // its schema, and creating the queue is a write too.
          await registry.validate(type, payload);
          await ensureQueues(await boss(), registry, context.log, [type]);
          const rollout = await manager();
          const results: EnqueueResult[] = [];
          // Batches of bounded size; each batch is one transaction.
          for (let done = 0; done < options.count; done += 1000) {
            const size = Math.min(1000, options.count - done);
            const items = Array.from({ length: size }, () => ({ payload, priority: options.priority, ...(options.key ? { key: options.key } : {}) }));
            results.push(...(await rollout.enqueueMany(type, items)));
          }
          const byEngine = { LEGACY: 0, PGBOSS: 0 };
          for (const result of results) byEngine[result.engine] += 1;
          if (context.json) return printJson({ enqueued: results.length, byEngine, jobs: results.slice(0, 100) });
          printLines([
            results.length === 1
              ? `enqueued ${results[0]!.id} on ${results[0]!.engine.toLowerCase()} (${results[0]!.reason}, bucket ${results[0]!.bucket})`
              : `enqueued ${results.length} ${type} job(s): ${byEngine.LEGACY} legacy, ${byEngine.PGBOSS} pg-boss`,
          ]);
        });
      });
    });
}
