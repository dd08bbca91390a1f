import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const cliEntry = join(repoRoot, 'dist', 'cli', 'main.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Merged over this process's environment, after the quiet test defaults. */
  env?: NodeJS.ProcessEnv;
  /** @defaultValue the repository root */
  cwd?: string;
  /** What the command reads on stdin. @defaultValue nothing (stdin closed at once) */
  input?: string;
}

/**
 * Which to use:
 * - `runCliInProcess` for a command that ends by itself (status, rollout, migrate, reconcile,
 *   dlq, enqueue, init, plan start/advance/abort, ...): the same program, output and exit code
 *   without starting Node, loading the build and connecting anew each time (most of a spawned
 *   run's second). Its exit code comes from `runProgram`, never from `process.exit`.
 * - `runCli` (the built binary, as a user runs it) where the process is the point: the CLI's
 *   foundation (exit codes, entry point, `process.exit` after a stray handle), secrets in a
 *   real process's output, anything reading variables or streams only a process has (a
 *   worker's CUTOVER_WORKER_SUMMARY_MS, webhooks from CUTOVER_WEBHOOK_URL, stdin for `enqueue -`),
 *   a Postgres embedded in `.cutover/`, a config file's imports as Node resolves them (in here,
 *   vitest resolves `cutover` for it).
 * - `startCli` (helpers/process.ts) for long-running or signal-driven commands (worker,
 *   dashboard, plan run, archive stopped halfway), `startInTerminal`/`runInTerminal`
 *   (helpers/terminal.ts) for what only happens on a terminal (questions, progress bars).
 */
export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliEntry, ...args], {
      cwd: options.cwd ?? repoRoot,
      env: cliEnv(options.env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

/** The environment a CLI run sees: quiet logs and a short flag cache unless a test says otherwise. */
function cliEnv(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, CUTOVER_LOG_LEVEL: 'warn', CUTOVER_FLAG_TTL_MS: '200', ...env };
}

/** In-process runs going on now, and the directory they run in (the process has one). */
let running = 0;
let restoreCwd: string | undefined;

/**
 * Runs `cutover <args>` in this process (src/cli/main.ts's runProgram) with runCli's result,
 * environment, working directory and stdin. Runs may overlap (`Promise.all`) when they share
 * one working directory: a command resolves some relative paths (`init --out`, a plan file)
 * against the process's own, so the process moves to `cwd` for the run.
 */
export async function runCliInProcess(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  const { runProgram } = await import('../../src/cli/main.js');
  const cwd = resolve(options.cwd ?? repoRoot);
  if (running > 0 && cwd !== process.cwd()) throw new Error(`runCliInProcess: a run in ${process.cwd()} is going on; runs at once share one working directory, got ${cwd}`);
  if (running === 0 && cwd !== process.cwd()) {
    restoreCwd = process.cwd();
    process.chdir(cwd);
  }
  running += 1;
  let stdout = '';
  let stderr = '';
  try {
    const code = await runProgram(args, {
      stdout: { write: (text: string) => (stdout += text) },
      stderr: { write: (text: string) => (stderr += text) },
      stdin: Readable.from([Buffer.from(options.input ?? '')], { objectMode: false }),
      env: cliEnv(options.env),
      cwd,
    });
    return { code, stdout, stderr };
  } finally {
    running -= 1;
    if (running === 0 && restoreCwd !== undefined) {
      process.chdir(restoreCwd);
      restoreCwd = undefined;
    }
  }
}
