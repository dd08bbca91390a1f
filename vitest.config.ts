import { existsSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

/** Whole-system runs that start their own processes and servers for minutes. */
export const scriptRuns = ['test/scripts/chaos.test.ts', 'test/scripts/bench-smoke.test.ts', 'test/scripts/pack.test.ts'];

/** Tests that run through a real PgBouncer they start (test/helpers/pgbouncer.ts). */
export const pooledRuns = ['test/**/*pooled*.test.ts', 'test/**/*pooler*.test.ts'];

// The README asks a machine for Node alone; PgBouncer comes from the system's packages. Without
// it the pooled tests are left out, in one line that says so; under CI (.ci/run installs it) they
// always run, and fail if it is missing.
const pgbouncerMissing = !existsSync('/usr/sbin/pgbouncer') && !existsSync('/usr/bin/pgbouncer');
const leaveOutPooled = pgbouncerMissing && process.env.CI !== 'true';
if (leaveOutPooled) {
  process.stderr.write('pooled tests left out: PgBouncer is not installed (apt-get install pgbouncer runs them; CI always does)\n');
}

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The reduced chaos run and the benchmark smoke test take minutes each: `npm run
    // test:scripts` (vitest.scripts.config.ts) runs them, and .ci/run runs both.
    exclude: [...scriptRuns, ...(leaveOutPooled ? pooledRuns : []), '**/node_modules/**'],
    globalSetup: ['test/helpers/global-setup.ts'],
    setupFiles: ['test/helpers/cleanup.ts'],
    // Each file gets its own database; two cores run two files at a time.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // A `.only` left behind would silently skip the rest of its file: it fails the run instead.
    allowOnly: false,
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }], './test/helpers/run-summary.ts'],
  },
});
