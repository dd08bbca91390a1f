import { defineConfig } from 'vitest/config';

/** Whole-system runs that start their own processes and servers for minutes. */
export const scriptRuns = ['test/scripts/chaos.test.ts', 'test/scripts/bench-smoke.test.ts'];

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The reduced chaos run and the benchmark smoke test take minutes each: `npm run
    // test:scripts` (vitest.scripts.config.ts) runs them, and .ci/run runs both.
    exclude: [...scriptRuns, '**/node_modules/**'],
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
