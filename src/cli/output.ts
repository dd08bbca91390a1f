import { AsyncLocalStorage } from 'node:async_hooks';
import type { DestinationStream } from 'pino';

/** Something a run of the CLI writes text to: the process's stdout or stderr, or a caller's buffer. */
export interface CliOutput {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
  hasColors?(): boolean;
}

/**
 * Where one run of the program reads and writes, and the environment and directory it runs in:
 * the process's own for the built binary, a caller's for `runProgram` (the tests run commands
 * in their own process this way). Read through `cliIo()`, never from `process` directly, so
 * two runs in one process never see each other's output, variables or directory.
 */
export interface CliIo {
  stdout: CliOutput;
  stderr: CliOutput;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  cwd: string;
}

const current = new AsyncLocalStorage<CliIo>();

/** This run's io; outside any run (a library caller), the process's own. */
export function cliIo(): CliIo {
  return current.getStore() ?? { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env, cwd: process.cwd() };
}

/** Runs `run` with `io` as what every `cliIo()` inside it (and in what it starts) returns. */
export function withCliIo<T>(io: CliIo, run: () => T): T {
  return current.run(io, run);
}

/**
 * Where this run's logs go: nothing to say for the process's own stderr (createLogger's
 * synchronous fd 2), else the run's stderr, one write per line as pino makes them.
 */
export function logDestination(): { destination?: DestinationStream } {
  const { stderr } = cliIo();
  return stderr === process.stderr ? {} : { destination: { write: (line: string) => void stderr.write(line) } };
}

/** The one place the CLI writes results: a single JSON document, or text for a person. */
export function printJson(value: unknown): void {
  cliIo().stdout.write(`${JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`);
}

export function printLines(lines: readonly string[]): void {
  if (lines.length) cliIo().stdout.write(`${lines.join('\n')}\n`);
}

/** Text written as it is (SQL, a metrics exposition): the caller ends its lines. */
export function printText(text: string): void {
  cliIo().stdout.write(text);
}

/** Left-aligned columns, widths from the content. */
export function formatTable(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string[] {
  const cells = [header, ...rows.map((row) => row.map(String))];
  const widths = header.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? '').length)));
  return cells.map((row) => row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd());
}
