import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { JobFailure } from '../jobs/errors.js';
import { compiledEntry } from '../support/paths.js';
import { CHILD_DATABASE_URL_ENV, parseChildLine, type ChildJob } from './protocol.js';

/** Job processes at once per worker and type: each is a child process of its own (some 70 MiB). */
export const MAX_JOB_PROCESSES = 20;

export type ChildOutcome =
  | { ok: true; result: unknown; logs: string }
  | { ok: false; failure: JobFailure; logs: string; /** Stopped because the worker is shutting down (the abort signal), not failed. */ interrupted?: true };

/** One line a job process wrote: a protocol `log` message, or plain output. */
export interface ChildLogLine {
  message: string;
  fields?: Record<string, unknown>;
  stream: 'stdout' | 'stderr';
}

export interface ExecuteOptions {
  timeoutMs: number;
  /** Between SIGTERM and SIGKILL when a job overruns. @defaultValue 5000 */
  killGraceMs?: number;
  databaseUrl: string;
  /** Aborting kills the child the same way a timeout does (worker shutdown). */
  signal?: AbortSignal;
  /** @defaultValue the compiled ./child.js */
  entry?: string;
  /**
   * The child's V8 heap cap (`--max-old-space-size`), so a leaking job dies alone and early
   * instead of taking the host's memory. @defaultValue Node's own limit
   */
  memoryLimitMb?: number;
  /** Each line as it arrives, for a live log; the bounded `logs` text is kept either way. */
  onLog?: (line: ChildLogLine) => void;
}

/** Logs kept per job: enough to debug, bounded so a chatty job can't exhaust memory. */
const MAX_LOG_CHARS = 64 * 1024;

/** What V8 prints on stderr before it aborts a process that reached its heap limit. */
const HEAP_EXHAUSTED = /JavaScript heap out of memory|Reached heap limit/;

/** The message of a job stopped because its worker is shutting down (the outcome says `interrupted`). */
const INTERRUPTED_BY_SHUTDOWN = 'interrupted by worker shutdown';

class LogBuffer {
  private text = '';
  private dropped = 0;

  append(line: string): void {
    if (this.text.length + line.length + 1 > MAX_LOG_CHARS) {
      this.dropped += 1;
      return;
    }
    this.text += `${line}\n`;
  }

  toString(): string {
    return this.dropped ? `${this.text}[${this.dropped} more lines dropped]\n` : this.text;
  }
}

/**
 * Runs one job in a child process (no shell, payload on stdin, JSON lines back). A `result`
 * line means success even when the child then exits non-zero, as legacy workers do; no result
 * and a non-zero exit, a crash, running out of memory, or a timeout is a failure, retryable:
 * the process died, not the job's logic.
 */
export function executeInChild(job: ChildJob, options: ExecuteOptions): Promise<ChildOutcome> {
  const entry = options.entry ?? compiledEntry('isolation/child.js');
  const execArgv = options.memoryLimitMb ? [`--max-old-space-size=${options.memoryLimitMb}`] : [];
  const child = spawn(process.execPath, [...execArgv, entry], {
    // The IPC channel carries nothing: it closes when this process dies, however it dies (a
    // SIGKILL runs no shutdown to stop the child), and the child exits on that (./child.ts).
    stdio: ['pipe', 'pipe', 'pipe', 'ipc'],
    // A child per job pays Node's start-up each time; V8's compile cache halves module loading.
    env: { NODE_COMPILE_CACHE: join(tmpdir(), 'cutover-compile-cache'), ...process.env, [CHILD_DATABASE_URL_ENV]: options.databaseUrl },
  });
  // Pipes, as asked for above: spawn's types know that only of a three-entry stdio.
  const [stdin, stdout, stderr] = [child.stdin!, child.stdout!, child.stderr!];
  const logs = new LogBuffer();
  const onLog = options.onLog;
  let result: { value: unknown } | undefined;
  let reportedFailure: JobFailure | undefined;
  let stopReason: string | undefined;
  let interrupted = false;
  let heapExhausted = false;

  createInterface({ input: stdout }).on('line', (line) => {
    const message = parseChildLine(line);
    if (!message) {
      onLog?.({ message: line, stream: 'stdout' });
      return logs.append(line);
    }
    if (message.type === 'log') {
      onLog?.({ message: message.message, ...(message.fields ? { fields: message.fields } : {}), stream: 'stdout' });
      logs.append(message.fields ? `${message.message} ${JSON.stringify(message.fields)}` : message.message);
    } else if (message.type === 'result') result ??= { value: message.result };
    else reportedFailure ??= message.error;
  });
  createInterface({ input: stderr }).on('line', (line) => {
    if (HEAP_EXHAUSTED.test(line)) heapExhausted = true;
    onLog?.({ message: line, stream: 'stderr' });
    logs.append(`[stderr] ${line}`);
  });

  let killTimer: NodeJS.Timeout | undefined;
  const stop = (reason: string, byShutdown = false) => {
    if (stopReason || child.exitCode !== null || child.signalCode !== null) return;
    stopReason = reason;
    interrupted = byShutdown;
    child.kill('SIGTERM');
    killTimer = setTimeout(() => child.kill('SIGKILL'), options.killGraceMs ?? 5000);
  };
  const timeout = setTimeout(() => stop(`timed out after ${Math.round(options.timeoutMs / 1000)}s`), options.timeoutMs);
  const onAbort = () => stop(INTERRUPTED_BY_SHUTDOWN, true);
  // A signal that aborted before the spawn fires no event: stop at once instead of never.
  if (options.signal?.aborted) onAbort();
  else options.signal?.addEventListener('abort', onAbort, { once: true });

  stdin.on('error', () => undefined); // a child that dies at once closes stdin under us
  stdin.end(JSON.stringify(job));

  return new Promise((resolve) => {
    child.on('error', (error) => logs.append(`[spawn] ${error.message}`));
    child.on('close', (code, signal) => {
      clearTimeout(timeout);
      clearTimeout(killTimer);
      options.signal?.removeEventListener('abort', onAbort);
      const text = logs.toString();
      if (result) return resolve({ ok: true, result: result.value, logs: text });
      if (stopReason) return resolve({ ok: false, failure: { message: stopReason, kind: 'retryable' }, logs: text, ...(interrupted ? { interrupted: true as const } : {}) });
      if (reportedFailure) return resolve({ ok: false, failure: reportedFailure, logs: text });
      if (heapExhausted) {
        const limit = options.memoryLimitMb ? ` (heap limit ${options.memoryLimitMb} MB)` : '';
        return resolve({ ok: false, failure: { message: `job process ran out of memory${limit}`, kind: 'retryable' }, logs: text });
      }
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      resolve({ ok: false, failure: { message: `job process ${how} without a result`, kind: 'retryable' }, logs: text });
    });
  });
}
