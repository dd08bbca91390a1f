/**
 * What a handler returned, made storable as JSON before any statement sees it. A success is
 * final, so a result that `JSON.stringify` would throw on must never turn into a failure and a
 * second run: Prisma's `$queryRaw` gives BigInt for `count(*)` and bigint columns (kept as their
 * exact decimal string, which is what users expect to read back), and a cycle or a function
 * cannot be encoded at all (dropped, with a note saying where). Everything else is what
 * `JSON.stringify` itself would keep, `toJSON` included.
 */
export interface StorableResult {
  value: unknown;
  /** One line per change made, e.g. "$.count: a BigInt, stored as a decimal string". */
  notes: string[];
}

const MAX_NOTES = 5;

export function storableResult(result: unknown): StorableResult {
  const notes: string[] = [];
  let dropped = 0;
  const note = (line: string) => {
    if (notes.length < MAX_NOTES) notes.push(line);
    else dropped++;
  };
  // Only the path from the root counts as a cycle: the same object reached twice by two
  // branches is shared, not circular, and JSON stores it twice.
  const ancestors = new Set<object>();

  const convert = (value: unknown, path: string, key: string): { keep: boolean; value?: unknown } => {
    if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
      value = (value as { toJSON: (key: string) => unknown }).toJSON(key);
    }
    switch (typeof value) {
      case 'bigint':
        note(`${path}: a BigInt, stored as a decimal string`);
        return { keep: true, value: value.toString() };
      case 'function':
      case 'symbol':
        note(`${path}: a ${typeof value}, dropped`);
        return { keep: false };
      case 'undefined':
        return { keep: false };
      case 'object':
        break;
      default:
        return { keep: true, value };
    }
    if (value === null) return { keep: true, value: null };
    if (ancestors.has(value)) {
      note(`${path}: a circular reference, dropped`);
      return { keep: false };
    }
    ancestors.add(value);
    try {
      if (Array.isArray(value)) {
        // JSON keeps an array's length: what cannot be stored becomes null, as JSON.stringify does.
        return { keep: true, value: value.map((item, index) => { const out = convert(item, `${path}[${index}]`, String(index)); return out.keep ? out.value : null; }) };
      }
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) {
        const converted = convert(item, /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`, key);
        if (converted.keep) out[key] = converted.value;
      }
      return { keep: true, value: out };
    } finally {
      ancestors.delete(value);
    }
  };

  const top = convert(result, '$', '');
  if (dropped > 0) notes.push(`and ${dropped} more`);
  return { value: top.keep ? top.value : undefined, notes };
}
