import { pino, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';
import { build as prettyStream } from 'pino-pretty';

export type { Logger };

export interface LoggerOptions {
  level?: LevelWithSilent;
  name?: string;
  /** Where lines go. @defaultValue stderr, synchronously */
  destination?: DestinationStream;
  /**
   * Human-readable lines (time, level, message, fields) instead of JSON lines: for a person at a
   * terminal, never for a file or a log collector. @defaultValue false
   */
  pretty?: boolean | PrettyOptions;
}

export interface PrettyOptions {
  /** ANSI colours. @defaultValue true */
  colorize?: boolean;
  /** An error's stack under its line; without it, only its message, on the line. @defaultValue true at debug and trace level */
  stacks?: boolean;
}

/** Keys whose values never reach a log line, wherever they appear in a logged object. */
const secretKeys = ['password', 'connectionString', 'databaseUrl', 'directUrl', 'url', 'DATABASE_URL', 'DIRECT_URL'];
const redactPaths = secretKeys.flatMap((key) => [key, `*.${key}`, `*.*.${key}`]);

/**
 * JSON lines to stderr, so `--json` output on stdout stays one clean document. Writes are
 * synchronous: a CLI that exits right after logging an error must not lose the line.
 * Besides the secret keys, every string logged (the message, an error's message and stack,
 * any value) goes through redactSecrets: a driver's error can quote a connection string.
 * `pretty` formats the same, already redacted, records for a terminal: pino-pretty runs in this
 * thread as the destination stream (not as a worker-thread transport), so it stays synchronous.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  const destination = options.destination ?? pino.destination({ fd: 2, sync: true });
  return pino(
    {
      name: options.name ?? 'cutover',
      level,
      redact: { paths: redactPaths, censor: '[redacted]' },
      base: { pid: process.pid },
      formatters: { level: (label) => ({ level: label }), log: (object) => redactValue(object, 0) as Record<string, unknown> },
      // The message as finally written: formatted, or taken from the logged error.
      serializers: { msg: (message: unknown) => (typeof message === 'string' ? redactSecrets(message) : message) },
    },
    options.pretty ? prettyDestination(destination, options.pretty === true ? {} : options.pretty, level) : destination,
  );
}

/**
 * `[12:04:31] WARN: kill switch is on: handed fetched jobs back to legacy unrun {"type":"a","jobs":3}`:
 * one line per record, the time without the date (a terminal session is short), no pid or name.
 * An error shows as its message on the line; its stack only when asked (--verbose).
 */
function prettyDestination(destination: DestinationStream, options: PrettyOptions, level: LevelWithSilent): DestinationStream {
  const stacks = options.stacks ?? (level === 'debug' || level === 'trace');
  return prettyStream({
    destination,
    sync: true,
    colorize: options.colorize ?? true,
    translateTime: 'SYS:HH:MM:ss',
    singleLine: true,
    ignore: stacks ? 'pid,hostname,name' : 'pid,hostname,name,err',
    ...(stacks ? {} : { messageFormat: (record: Record<string, unknown>, key: string) => withError(record[key], record.err) }),
  });
}

/** The message, then the error's own message unless the message already is it (`log.warn(error)`). */
function withError(message: unknown, err: unknown): string {
  const text = typeof message === 'string' ? message : '';
  const reason = (err as { message?: unknown } | undefined)?.message;
  if (typeof reason !== 'string' || !reason || reason === text) return text;
  return text ? `${text}: ${reason}` : reason;
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
