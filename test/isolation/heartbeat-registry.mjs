// One job type for the parent-death test: a process-isolated job that works for a long time and
// says so in a heartbeat file (its pid, then one more beat every 50 ms), so a test can tell
// whether its process still runs once its worker is gone.
import { appendFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { defineJob } from '../../dist/jobs/index.js';

export default [
  defineJob({
    name: 'iso.heartbeat',
    schema: z.object({ file: z.string() }),
    retry: { limit: 2, delaySeconds: 0 },
    timeoutSeconds: 600,
    isolation: 'process',
    async handler(payload) {
      writeFileSync(payload.file, `${process.pid}\n`);
      for (;;) {
        appendFileSync(payload.file, 'beat\n');
        await sleep(50);
      }
    },
  }),
];
