import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
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
