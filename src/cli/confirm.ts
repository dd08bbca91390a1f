import { createInterface } from 'node:readline/promises';
import { UsageError } from '../errors.js';

/**
 * Destructive actions ask on a terminal; without one, only `--yes` lets them run, so a script
 * never does something it was not told to. Anything but y/yes is no, and so are Ctrl-C and
 * Ctrl-D at the prompt: an operator who hits Ctrl-C wants out at once, not a second prompt.
 */
export async function confirm(question: string, yes: boolean): Promise<boolean> {
  if (yes) return true;
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new UsageError(`refusing to ${question} without a terminal to confirm on; pass --yes`);
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const controller = new AbortController();
  // readline swallows Ctrl-C while it reads (the terminal is raw): without this the question
  // would wait on, and only a second Ctrl-C would end the process.
  rl.on('SIGINT', () => controller.abort());
  rl.on('close', () => controller.abort());
  try {
    const answer = await rl.question(`${question}? [y/N] `, { signal: controller.signal });
    return /^y(es)?$/i.test(answer.trim());
  } catch (error) {
    if (controller.signal.aborted) {
      process.stderr.write('\n');
      return false;
    }
    throw error;
  } finally {
    rl.close();
  }
}
