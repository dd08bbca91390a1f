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
 * A statement Postgres parses and plans once per connection instead of on every call: for the
 * statements a worker sends per batch, whose planning (CTEs over the legacy table and pg-boss's)
 * costs as much as running them. Named after the text, so a different text is a different
 * statement; past MAX_PREPARED_TEXTS a new text runs unnamed, planned each time as before.
 */
export function prepared(text: string, values: unknown[]): { name?: string; text: string; values: unknown[] } {
  let name = names.get(text);
  if (name === undefined) {
    if (names.size >= MAX_PREPARED_TEXTS) return { text, values };
    name = `cutover_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;
    names.set(text, name);
  }
  return { name, text, values };
}
