import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level?: LevelWithSilent;
  name?: string;
}

/** Keys whose values never reach a log line, wherever they appear in a logged object. */
const secretKeys = ['password', 'connectionString', 'databaseUrl', 'url', 'DATABASE_URL'];
const redactPaths = secretKeys.flatMap((key) => [key, `*.${key}`, `*.*.${key}`]);

/**
 * JSON lines to stderr, so `--json` output on stdout stays one clean document. Writes are
 * synchronous: a CLI that exits right after logging an error must not lose the line.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      name: options.name ?? 'cutover',
      level: options.level ?? 'info',
      redact: { paths: redactPaths, censor: '[redacted]' },
      base: { pid: process.pid },
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ fd: 2, sync: true }),
  );
}

/** A connection string safe to show: the password, if any, replaced. */
export function redactConnectionString(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '[unparseable connection string]';
  }
}

/** Strips anything that looks like a credential-bearing URL out of free text (error messages). */
export function redactSecrets(text: string): string {
  return text.replace(/(postgres(?:ql)?:\/\/[^:@/\s]*:)[^@\s]*@/gi, '$1***@');
}
