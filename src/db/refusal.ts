import { sqlState, SQLSTATE } from '../support/pg-errors.js';

/**
 * True when Postgres refused the values a statement tried to store, rather than the statement
 * or the connection: storing fewer may work. Class 22 (data exception: a NUL in text or jsonb, a
 * string too long for varchar(n), a number out of range) and the constraint violations a
 * column's value alone can cause.
 */
export function isDataRefusal(error: unknown): boolean {
  const code = sqlState(error);
  return code !== undefined && (code.startsWith(SQLSTATE.dataExceptionClass) || code === SQLSTATE.notNullViolation || code === SQLSTATE.checkViolation);
}

/** Postgres text and jsonb cannot hold a NUL character; job output and error messages may contain one. */
export function withoutNul(text: string): string {
  return text.replaceAll('\u0000', '');
}
