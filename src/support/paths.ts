import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// This file sits one room below src/ (or dist/): src/support/paths.ts.
const srcRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const runningFromSource = import.meta.url.endsWith('.ts');

/** The package root, from src/ (tests) or dist/ (the CLI). */
export const packageRoot = resolve(srcRoot, '..');

/**
 * The compiled JavaScript of one of our modules, for entry points run in child processes.
 * Tests run from src/, but children always run the build (npm test builds first).
 */
export function compiledEntry(relativeToSrc: string): string {
  return runningFromSource ? join(packageRoot, 'dist', relativeToSrc) : join(srcRoot, relativeToSrc);
}
