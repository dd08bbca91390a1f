import { spawn, type ChildProcess } from 'node:child_process';
import { cliEntry, repoRoot } from './cli.js';

export interface CliProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal: NodeJS.Signals): void;
}

const live = new Set<ChildProcess>();

/** Kills whatever a test started and left running (a failed or timed-out test skips its own stop). */
export async function killStragglers(): Promise<void> {
  const waiting = [...live].map((child) => new Promise((resolve) => child.once('exit', resolve)));
  for (const child of live) child.kill('SIGKILL');
  await Promise.all(waiting);
}

/** A long-running CLI command (a worker) in its own process, as an operator would start it. */
export function startCli(args: readonly string[], env: NodeJS.ProcessEnv = {}, options: { cwd?: string } = {}): CliProcess {
  const child = spawn(process.execPath, [cliEntry, ...args], {
    cwd: options.cwd ?? repoRoot,
    env: { ...process.env, CUTOVER_LOG_LEVEL: 'warn', CUTOVER_FLAG_TTL_MS: '200', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  live.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    }),
  );
  return { child, stdout: () => stdout, stderr: () => stderr, exited, kill: (signal) => child.kill(signal) };
}
