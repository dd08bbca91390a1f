import { createHash } from 'node:crypto';

/**
 * A statement Postgres parses and plans once per connection instead of on every call: for the
 * statements a worker sends per batch, whose planning (CTEs over the legacy table and pg-boss's)
 * costs as much as running them. Named after the text, so a different text is a different
 * statement; texts vary only with the table and the shape of results, a handful per process.
 */
export function prepared(text: string, values: unknown[]): { name: string; text: string; values: unknown[] } {
  return { name: `cutover_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`, text, values };
}
