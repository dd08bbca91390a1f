import { spawn, type ChildProcess } from 'node:child_process';
import { stripVTControlCharacters } from 'node:util';
import { cliEntry, repoRoot } from './cli.js';
import { pollUntil } from './wait.js';

/**
 * The built CLI under a real pseudo-terminal, for what only happens on one: questions before
 * destructive actions, progress bars, a worker's summary line. util-linux `script` (in Debian's
 * base images) makes the pty: `-q` no banner, `-f` flush at once, `-e` exit with the child's
 * code (a signal's as 128+n), `-c` the command; the typescript file is /dev/null. The child's
 * stdin, stdout and stderr are all the terminal, so its output arrives merged, with the
 * terminal's echo of what was typed and CRLF line ends; `output()` gives it as plain text.
 */
export interface TerminalSession {
  /** Everything the terminal showed so far, control sequences removed, lines ending in \n. */
  output(): string;
  /** Types `text` at the terminal (`\x03` is Ctrl-C, `\x04` Ctrl-D). */
  type(text: string): void;
  /** Waits until the output matches. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
  exited: Promise<{ code: number | null; output: string }>;
  child: ChildProcess;
}

/** Quoted for `sh`: the whole value in single quotes, a single quote as '\''. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

const live = new Set<ChildProcess>();

/** Kills what a failed test left running in a terminal. */
export async function killTerminals(): Promise<void> {
  const waiting = [...live].map((child) => new Promise((resolve) => child.once('exit', resolve)));
  for (const child of live) child.kill('SIGKILL');
  await Promise.all(waiting);
}

export function plain(text: string): string {
  return stripVTControlCharacters(text).replaceAll('\r\n', '\n').replaceAll('\r', '\n');
}

/**
 * Starts `cutover <args>` in a terminal of 120 columns (a fixed width, so a progress bar draws
 * the same way everywhere). `exec` makes the CLI the terminal's foreground process itself, so a
 * typed Ctrl-C reaches it as it would an operator's.
 */
export function startInTerminal(args: readonly string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): TerminalSession {
  const command = `stty cols 120 rows 40; exec ${[process.execPath, cliEntry, ...args].map(shellQuote).join(' ')}`;
  const child = spawn('script', ['-qfec', command, '/dev/null'], {
    cwd: options.cwd ?? repoRoot,
    env: { ...process.env, CUTOVER_LOG_LEVEL: 'warn', CUTOVER_FLAG_TTL_MS: '200', SHELL: '/bin/sh', ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  live.add(child);
  let raw = '';
  child.stdout.on('data', (chunk: Buffer) => (raw += chunk.toString()));
  // `script` itself writes only its own failures here.
  child.stderr.on('data', (chunk: Buffer) => (raw += chunk.toString()));
  const exited = new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      live.delete(child);
      resolve({ code, output: plain(raw) });
    });
  });
  return {
    output: () => plain(raw),
    type: (text) => child.stdin.write(text),
    waitFor: (pattern, timeoutMs = 30_000) =>
      pollUntil(`the terminal to show ${pattern}; it shows:\n${plain(raw)}`, async () => pattern.test(plain(raw)), { timeoutMs }).then(() => undefined),
    exited,
    child,
  };
}

/**
 * Runs `cutover <args>` in a terminal to its end, answering each question as it appears: for
 * every `[y/N]` prompt shown, the next of `answers` is typed (with Enter).
 */
export async function runInTerminal(args: readonly string[], options: { answers?: readonly string[]; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<{ code: number | null; output: string }> {
  const session = startInTerminal(args, options);
  const answers = [...(options.answers ?? [])];
  let asked = 0;
  const watcher = setInterval(() => {
    const prompts = session.output().match(/\[y\/N\] /g)?.length ?? 0;
    while (asked < prompts && answers.length) {
      session.type(`${answers.shift()!}\n`);
      asked += 1;
    }
  }, 20);
  try {
    return await session.exited;
  } finally {
    clearInterval(watcher);
  }
}
