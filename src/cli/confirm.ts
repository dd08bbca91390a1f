import { createInterface } from 'node:readline/promises';
import { UsageError } from '../errors.js';

/**
 * Destructive actions ask on a terminal; without one, only `--yes` lets them run, so a script
 * never does something it was not told to.
 */
export async function confirm(question: string, yes: boolean): Promise<boolean> {
  if (yes) return true;
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new UsageError(`refusing to ${question} without a terminal to confirm on; pass --yes`);
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question}? [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}
