// The demo's job registry: the three demo jobs, plus a switch the demo flips to make pg-boss
// fail (a file whose existence means "pg-boss is broken"), so `cutover demo` can show an
// automatic abort and rollback. Only the demo loads this module; teams never see the switch.
import { existsSync } from 'node:fs';
import type { AnyJobDefinition } from '../jobs/define.js';
import { demoJobs } from '../jobs/demo.js';
import { NonRetryableError } from '../jobs/errors.js';

export const DEMO_FAULT_ENV = 'CUTOVER_DEMO_FAULT_FILE';

const faultFile = process.env[DEMO_FAULT_ENV];

const jobs: AnyJobDefinition[] = demoJobs.map((definition) => ({
  ...definition,
  async handler(payload, context) {
    if (faultFile && context.engine === 'PGBOSS' && existsSync(faultFile)) {
      throw new NonRetryableError('injected fault: the pg-boss side is broken');
    }
    return definition.handler(payload, context);
  },
}));

export default jobs;
