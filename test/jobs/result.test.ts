import { describe, expect, it } from 'vitest';
import { storableResult } from '../../src/jobs/result.js';

describe('a handler result made storable', () => {
  it('keeps what JSON keeps, unchanged and without a note', () => {
    const shared = { a: 1 };
    const input = { n: 1.5, s: 'x', b: true, none: null, list: [1, 'two'], at: new Date('2026-01-02T03:04:05.000Z'), left: shared, right: shared, gone: undefined };
    const { value, notes } = storableResult(input);
    expect(value).toEqual(JSON.parse(JSON.stringify(input)));
    expect(notes).toEqual([]);
  });

  it('stores a BigInt as its exact decimal string, as Prisma counts come back', () => {
    const { value, notes } = storableResult({ count: 9007199254740993n, rows: [{ id: 1n }] });
    expect(value).toEqual({ count: '9007199254740993', rows: [{ id: '1' }] });
    expect(notes).toEqual(['$.count: a BigInt, stored as a decimal string', '$.rows[0].id: a BigInt, stored as a decimal string']);
    expect(() => JSON.stringify(value)).not.toThrow();
    expect(storableResult(42n).value).toBe('42');
  });

  it('drops a cycle, a function and a symbol, saying where', () => {
    const node: Record<string, unknown> = { name: 'root', run: () => 1, tag: Symbol('t') };
    node.self = node;
    node.list = [node, 2];
    const { value, notes } = storableResult(node);
    expect(value).toEqual({ name: 'root', list: [null, 2] });
    expect(notes).toEqual(['$.run: a function, dropped', '$.tag: a symbol, dropped', '$.self: a circular reference, dropped', '$.list[0]: a circular reference, dropped']);
  });

  it('bounds its notes', () => {
    const { notes } = storableResult(Array.from({ length: 20 }, (_, i) => BigInt(i)));
    expect(notes).toHaveLength(6);
    expect(notes.at(-1)).toBe('and 15 more');
  });

  it('a result that is nothing storable is undefined', () => {
    expect(storableResult(() => 1)).toEqual({ value: undefined, notes: ['$: a function, dropped'] });
    expect(storableResult(undefined)).toEqual({ value: undefined, notes: [] });
  });
});
