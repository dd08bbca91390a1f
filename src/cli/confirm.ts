import { createInterface } from 'node:readline/promises';
import { UsageError } from '../support/errors.js';

export interface ConfirmOptions {
  /** Shown above the question, where the question goes (stderr): what the action would change. */
  details?: readonly string[];
  /**
   * Without a terminal: `refuse` (destructive actions, DESIGN §8: only `--yes` runs them), or
   * `proceed` for an action a script may run as it always has (a reversible, audited move, such
   * as `migrate`): the question is then a terminal's courtesy, not a gate.
   * @defaultValue 'refuse'
   */
  withoutTerminal?: 'refuse' | 'proceed';
}

/** Whether a person can be asked: the question is written to stderr and read from stdin. */
export function onTerminal(): boolean {
  return process.stdin.isTTY === true && process.stderr.isTTY === true;
}

/**
 * Destructive actions ask on a terminal; without one, only `--yes` lets them run, so a script
 * never does something it was not told to. Anything but y/yes is no, and so are Ctrl-C and
 * Ctrl-D at the prompt: an operator who hits Ctrl-C wants out at once, not a second prompt.
 */
export async function confirm(question: string, yes: boolean, options: ConfirmOptions = {}): Promise<boolean> {
  if (yes) return true;
  if (!onTerminal()) {
    if (options.withoutTerminal === 'proceed') return true;
    throw new UsageError(`refusing to ${question} without a terminal to confirm on; pass --yes`);
  }
  if (options.details?.length) process.stderr.write(`${options.details.join('\n')}\n`);
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
