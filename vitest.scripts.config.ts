import { defineConfig } from 'vitest/config';
import suite, { scriptRuns } from './vitest.config.js';

// `npm run test:scripts`: the reduced chaos run and the benchmark smoke test, kept out of
// `npm test` for their minutes; the suite's setup, with reports of their own for .ci/run.
// Spread, not mergeConfig: that would append these lists to the suite's.
export default defineConfig({
  test: {
    ...suite.test,
    include: scriptRuns,
    exclude: ['**/node_modules/**'],
    reporters: ['default', ['json', { outputFile: 'test-results/vitest-scripts.json' }], ['./test/helpers/run-summary.ts', { outputFile: 'test-results/run-summary-scripts.json' }]],
  },
});
