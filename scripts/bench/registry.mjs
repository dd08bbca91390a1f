// The benchmark's job: does nothing, so what is measured is the engine, not the work.
import { z } from 'zod';
import { defineJob } from '../../dist/jobs/index.js';

export default [defineJob({ name: 'bench.noop', schema: z.object({ n: z.number().int() }), retry: { limit: 0 }, async handler() { return null; } })];
