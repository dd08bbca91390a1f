import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Reporter, TestModule } from 'vitest/node';

interface SerializedErrorLike {
  message?: string;
  name?: string;
}

/**
 * Writes what vitest's JSON report leaves out: the unhandled errors of the run (an error thrown
 * outside any test fails the run, yet no test and no file counts as failed) and why the run
 * ended. `.ci/run` reads it next to the JSON report for its closing line.
 */
export default class RunSummaryReporter implements Reporter {
  private readonly outputFile: string;

  constructor(options: { outputFile?: string } = {}) {
    this.outputFile = options.outputFile ?? 'test-results/run-summary.json';
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedErrorLike>, reason: string): void {
    mkdirSync(dirname(this.outputFile), { recursive: true });
    writeFileSync(
      this.outputFile,
      JSON.stringify({
        reason,
        files: testModules.length,
        unhandledErrors: unhandledErrors.map((error) => `${error.name ?? 'Error'}: ${error.message ?? ''}`.split('\n')[0]),
      }),
    );
  }
}
