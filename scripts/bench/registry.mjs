// The benchmark's jobs: a no-op, so what is measured is the engine, not the work; and a sleep,
// to hold many jobs in flight at once (memory per concurrent job).
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineJob } from '../../dist/jobs/index.js';

export default [
  defineJob({ name: 'bench.noop', schema: z.object({ n: z.number().int() }), retry: { limit: 0 }, async handler() { return null; } }),
  defineJob({
    name: 'bench.sleep',
    schema: z.object({ ms: z.number().int().min(0) }),
    retry: { limit: 0 },
    timeoutSeconds: 120,
    async handler({ ms }, { signal }) {
      await sleep(ms, undefined, { signal }).catch(() => undefined);
      return null;
    },
  }),
];
