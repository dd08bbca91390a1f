/**
 * SQLSTATEs by which Postgres refuses a value rather than the statement or the connection:
 * class 22 (data exception: a NUL in text or jsonb, a string too long for varchar(n), a number
 * out of range) and the constraint violations a column's value alone can cause.
 */
const DATA_EXCEPTION_CLASS = '22';
const NOT_NULL_VIOLATION = '23502';
const CHECK_VIOLATION = '23514';

/** True when Postgres refused the values a statement tried to store: storing fewer may work. */
export function isDataRefusal(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith(DATA_EXCEPTION_CLASS) || code === NOT_NULL_VIOLATION || code === CHECK_VIOLATION);
}

/** Postgres text and jsonb cannot hold a NUL character; job output and error messages may contain one. */
export function withoutNul(text: string): string {
  return text.replaceAll('\u0000', '');
}
