import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level?: LevelWithSilent;
  name?: string;
  /** Where lines go. @defaultValue stderr, synchronously */
  destination?: DestinationStream;
}

/** Keys whose values never reach a log line, wherever they appear in a logged object. */
const secretKeys = ['password', 'connectionString', 'databaseUrl', 'url', 'DATABASE_URL'];
const redactPaths = secretKeys.flatMap((key) => [key, `*.${key}`, `*.*.${key}`]);

/**
 * JSON lines to stderr, so `--json` output on stdout stays one clean document. Writes are
 * synchronous: a CLI that exits right after logging an error must not lose the line.
 * Besides the secret keys, every string logged (the message, an error's message and stack,
 * any value) goes through redactSecrets: a driver's error can quote a connection string.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      name: options.name ?? 'cutover',
      level: options.level ?? 'info',
      redact: { paths: redactPaths, censor: '[redacted]' },
      base: { pid: process.pid },
      formatters: { level: (label) => ({ level: label }), log: (object) => redactValue(object, 0) as Record<string, unknown> },
      // The message as finally written: formatted, or taken from the logged error.
      serializers: { msg: (message: unknown) => (typeof message === 'string' ? redactSecrets(message) : message) },
    },
    options.destination ?? pino.destination({ fd: 2, sync: true }),
  );
}

/** Deep enough for `{ err }` with a cause or two; anything deeper is logged as it is. */
const MAX_DEPTH = 4;

/** A logged value with the secrets taken out of its strings; errors in pino's plain form. */
function redactValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactSecrets(value);
  if (depth >= MAX_DEPTH || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => redactValue(item, depth + 1));
  // Serialized here rather than by pino's `err` serializer, so the message and stack can be redacted.
  if (value instanceof Error) return redactEntries(pino.stdSerializers.err(value), depth);
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null ? redactEntries(value, depth) : value;
}

function redactEntries(value: object, depth: number): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, redactValue(item, depth + 1)]));
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

/**
 * The password of a URL-shaped credential, with or without a scheme (`mysql://root:pw@h`,
 * `user:pw@host`): everything from the first ':' after the user to the last '@' of the token,
 * since a raw password may itself hold ':' or '@' (and an encoded one, '%40').
 */
const USERINFO_PASSWORD = /((?:[a-z][a-z0-9+.-]*:\/\/)?[^\s:@/'"=]*:)\S*@/gi;

/**
 * A `password=…` value as libpq keyword strings, URL query strings, env assignments
 * (PGPASSWORD=, DB_PASSWORD=) and JSON write it: quoted (with escapes) or up to whitespace.
 */
const KEYWORD_PASSWORD = /((?:password|passwd|pwd)"?\s*[:=]\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S+)/gi;

/**
 * Strips credentials out of free text (error messages, stack traces) whatever their shape.
 * Errs towards hiding too much: a line is still useful with `***` where a port was.
 */
export function redactSecrets(text: string): string {
  return text.replace(KEYWORD_PASSWORD, '$1***').replace(USERINFO_PASSWORD, '$1***@');
}
