import { createHash } from 'node:crypto';

/**
 * At most this many distinct texts are prepared by one process. A prepared statement lives on
 * every connection that ran it (a fifth of a MiB each in Postgres, measured) until the
 * connection closes, and some texts vary with a batch's size: unbounded, a producer that sends
 * batches of every size from 1 to 150 kept 150 of them on each connection. The hot statements
 * come first (a worker's per-batch pair, a single enqueue), so they are the ones kept.
 */
export const MAX_PREPARED_TEXTS = 32;

const names = new Map<string, string>();

/**
 * Whether named statements may be used. A transaction pooler (PgBouncer in transaction mode,
 * Supabase's and Neon's pooled endpoints, RDS Proxy) gives each statement outside a
 * transaction whichever server connection is free: a statement prepared on one is missing on
 * the next ("does not exist", 26000) or there already from another client ("already exists",
 * 42P05). So once this process finds a pooler (db/pooler.ts) or such an error, every statement
 * runs unnamed from then on: a process has one database URL, and an unnamed statement through
 * a pooler is fine.
 */
let named = true;

/** From now on, statements run unnamed (see above). */
export function disablePreparedStatements(): void {
  named = false;
}

/** False once a transaction pooler was found in front of the database. */
export function preparedStatementsEnabled(): boolean {
  return named;
}

/**
 * A statement Postgres parses and plans once per connection instead of on every call: for the
 * statements a worker sends per batch, whose planning (CTEs over the legacy table and pg-boss's)
 * costs as much as running them. Named after the text, so a different text is a different
 * statement; past MAX_PREPARED_TEXTS a new text runs unnamed, planned each time as before, and
 * every text does once a transaction pooler was found.
 */
export function prepared(text: string, values: unknown[]): { name?: string; text: string; values: unknown[] } {
  if (!named) return { text, values };
  let name = names.get(text);
  if (name === undefined) {
    if (names.size >= MAX_PREPARED_TEXTS) return { text, values };
    name = `cutover_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;
    names.set(text, name);
  }
  return { name, text, values };
}
