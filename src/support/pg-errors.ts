/**
 * Postgres errors, read in one place: the SQLSTATEs cutover acts on by name, the code of a
 * thrown value, and the walk down its `cause` chain (pg-boss and cutover wrap the driver's
 * error, the original as `cause`).
 */

/** The SQLSTATEs (and SQLSTATE classes, two characters) cutover acts on. */
export const SQLSTATE = {
  /** Class 08: the connection failed or was lost. */
  connectionExceptionClass: '08',
  /** Class 25: the statement is not allowed in the transaction's state (aborted, read-only, none open). */
  invalidTransactionStateClass: '25',
  /** A named prepared statement this connection does not have: behind a transaction pooler, it was prepared on another server connection. */
  invalidSqlStatementName: '26000',
  /** A named prepared statement this connection has already: behind a transaction pooler, another client prepared it there. */
  duplicatePreparedStatement: '42P05',
  /** Class 22: a value Postgres cannot store (a NUL in text, too long for varchar(n), out of range). */
  dataExceptionClass: '22',
  divisionByZero: '22012',
  notNullViolation: '23502',
  checkViolation: '23514',
  insufficientPrivilege: '42501',
  undefinedTable: '42P01',
  duplicateDatabase: '42P04',
  /** 57P01..57P03: the server shuts down, crashed, or is starting up. */
  adminShutdown: '57P01',
  crashShutdown: '57P02',
  cannotConnectNow: '57P03',
} as const;

const SQLSTATE_SHAPE = /^[0-9A-Z]{5}$/;

/** How many errors of a cause chain are read: the thrown one and three causes is deeper than any wrapping here. */
const MAX_CHAIN = 4;

/** The `code` a thrown value carries (Node's `ECONNREFUSED`, `ENOENT`; a driver's SQLSTATE), if it is a string. */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The SQLSTATE of a Postgres error: its code when it has the shape of one (five digits or capitals). */
export function sqlState(error: unknown): string | undefined {
  const code = errorCode(error);
  return code !== undefined && SQLSTATE_SHAPE.test(code) ? code : undefined;
}

/** The error itself, then its causes, outermost first (at most four, and never round a cycle). */
export function* causes(error: unknown): Generator<unknown> {
  const seen = new Set<unknown>();
  for (let current = error; current && !seen.has(current) && seen.size < MAX_CHAIN; current = (current as { cause?: unknown }).cause) {
    seen.add(current);
    yield current;
  }
}

/** The first of the error and its causes that `predicate` accepts. */
export function findCause(error: unknown, predicate: (cause: unknown) => boolean): unknown {
  for (const cause of causes(error)) if (predicate(cause)) return cause;
  return undefined;
}

/** A Postgres error as the driver throws it: a message and a SQLSTATE. */
export type DatabaseError = Error & { code: string };

/**
 * The Postgres error behind an error, whether thrown as it is or as the cause of a wrapping
 * one: what every translation of a database failure into an operator's message starts from.
 */
export function databaseError(error: unknown): DatabaseError | undefined {
  return findCause(error, (cause) => sqlState(cause) !== undefined) as DatabaseError | undefined;
}

/** The database refused for want of a grant (SQLSTATE 42501). */
export function isPermissionDenied(error: unknown): boolean {
  return sqlState(error) === SQLSTATE.insufficientPrivilege;
}

/** A relation the statement names does not exist (SQLSTATE 42P01). */
export function isUndefinedTable(error: unknown): boolean {
  return sqlState(error) === SQLSTATE.undefinedTable;
}

/** A named prepared statement missing or already there (26000, 42P05): what a transaction pooler does to them. */
export function isPreparedStatementError(error: unknown): boolean {
  const state = sqlState(databaseError(error));
  return state === SQLSTATE.invalidSqlStatementName || state === SQLSTATE.duplicatePreparedStatement;
}

/** The driver's words for a connection that went away under a query (it gives them no code). */
const LOST_CONNECTION = /Connection terminated|connection (?:is )?(?:closed|ended)|Client has encountered a connection error/i;
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTCONN']);

/**
 * An error of our own connection's state, not an answer about the statement: a prepared
 * statement the server connection lacks or has already (26000, 42P05), the connection lost
 * (class 08, a network error, the driver's "Connection terminated"), the server shutting down
 * (57P01..57P03), or a transaction in a state that refuses statements (class 25). Such an error
 * says nothing about whether pg-boss would take the job.
 */
export function isConnectionStateError(error: unknown): boolean {
  if (isPreparedStatementError(error)) return true;
  for (const cause of causes(error)) {
    const state = sqlState(cause);
    if (state !== undefined) {
      if (state.startsWith(SQLSTATE.connectionExceptionClass) || state.startsWith(SQLSTATE.invalidTransactionStateClass)) return true;
      if (state === SQLSTATE.adminShutdown || state === SQLSTATE.crashShutdown || state === SQLSTATE.cannotConnectNow) return true;
      continue;
    }
    const code = errorCode(cause);
    if (code !== undefined && NETWORK_CODES.has(code)) return true;
    if (cause instanceof Error && LOST_CONNECTION.test(cause.message)) return true;
  }
  return false;
}
