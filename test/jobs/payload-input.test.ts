import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { assertPrintable, readPayload } from '../../src/cli/parse.js';
import { InvalidPayloadError, UnknownJobTypeError, UsageError } from '../../src/support/errors.js';
import { defineJob } from '../../src/jobs/define.js';
import { createRegistry, MAX_PAYLOAD_BYTES } from '../../src/jobs/registry.js';

const registry = createRegistry([
  defineJob({ name: 'any', schema: z.unknown(), handler: async () => null }),
  defineJob({ name: 'doc', schema: z.object({ id: z.string() }), handler: async () => null }),
]);

/** A payload whose JSON is exactly `bytes` long. */
function payloadOf(bytes: number): { data: string } {
  return { data: 'x'.repeat(bytes - JSON.stringify({ data: '' }).length) };
}

describe('payload limits (registry.validate, for enqueue and migrate alike)', () => {
  it('admits a payload of exactly MAX_PAYLOAD_BYTES of JSON, and refuses one byte more, saying both sizes', async () => {
    expect(MAX_PAYLOAD_BYTES).toBe(1024 * 1024);
    await expect(registry.validate('any', payloadOf(MAX_PAYLOAD_BYTES))).resolves.toBeDefined();
    await expect(registry.validate('any', payloadOf(MAX_PAYLOAD_BYTES + 1))).rejects.toThrow(
      new InvalidPayloadError('any', `payload is ${MAX_PAYLOAD_BYTES + 1} bytes of JSON, over the limit of ${MAX_PAYLOAD_BYTES} (1 MiB); pass a reference (an id, a URL) instead of the data`),
    );
  });

  it('counts bytes, not characters: multi-byte text reaches the limit sooner', async () => {
    const euros = { data: '€'.repeat(Math.ceil(MAX_PAYLOAD_BYTES / 3)) };
    await expect(registry.validate('any', euros)).rejects.toThrow(/bytes of JSON, over the limit/);
  });

  it('lets a job that was already admitted run whatever its size (sizeLimit: false, for the legacy child)', async () => {
    await expect(registry.validate('any', payloadOf(MAX_PAYLOAD_BYTES + 1), { sizeLimit: false })).resolves.toBeDefined();
  });

  it.each([
    ['a NUL in a value', { note: 'a\u0000b' }],
    ['a NUL in a key', { 'a\u0000': 1 }],
    ['a NUL deep in an array', { list: [[{ x: '\u0000' }]] }],
  ])('refuses what Postgres cannot store: %s', async (_case, payload) => {
    await expect(registry.validate('any', payload)).rejects.toThrow(/payload contains a NUL character \(\\u0000\), which Postgres cannot store/);
  });

  it.each([
    ['a high surrogate alone', { note: 'a\ud800b' }],
    ['a low surrogate alone', { note: '\udc00' }],
  ])('refuses text that is not Unicode: %s', async (_case, payload) => {
    await expect(registry.validate('any', payload)).rejects.toThrow(/payload contains a lone UTF-16 surrogate \(not valid Unicode\), which Postgres cannot store/);
    // A pair is a character like any other.
    await expect(registry.validate('any', { note: '\ud83d\ude00' })).resolves.toBeDefined();
  });

  it.each([
    ['undefined', undefined, /must be a JSON value, got undefined/],
    ['a function', () => 1, /must be a JSON value, got function/],
    ['a BigInt', { n: 1n }, /must be JSON \(Do not know how to serialize a BigInt\)/],
  ])('refuses what is not JSON: %s', async (_case, payload, message) => {
    await expect(registry.validate('any', payload)).rejects.toThrow(message);
  });

  it('names an unknown type before looking at the payload', async () => {
    await expect(registry.validate('nope', payloadOf(MAX_PAYLOAD_BYTES * 2))).rejects.toBeInstanceOf(UnknownJobTypeError);
  });

  it('still applies the schema', async () => {
    await expect(registry.validate('doc', { id: 5 })).rejects.toThrow(/^invalid payload for doc: id: /);
  });
});

describe('job registries', () => {
  it.each([
    ["x'); DROP TABLE \"Job\"; --"],
    ['type\nname'],
    [''],
  ])('refuse a definition made by hand whose name breaks the rule: %j', (name) => {
    const handmade = { name, schema: z.unknown(), handler: async () => null, retry: { limit: 0, delaySeconds: 0, backoff: false }, timeoutSeconds: 1, sideEffects: 'none' as const };
    expect(() => createRegistry([handmade], '/jobs.mjs')).toThrow(UsageError);
    expect(() => createRegistry([handmade], '/jobs.mjs')).toThrow(/^job registry \/jobs\.mjs: job name must be 1-100 letters, digits/);
  });
});

describe('the <payload-json> argument', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cutover-payload-'));
    await writeFile(join(dir, 'p.json'), '{\n  "id": "from a file"\n}\n');
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('is JSON as typed, `-` for stdin, or @file', async () => {
    await expect(readPayload('{"id":"typed"}')).resolves.toEqual({ id: 'typed' });
    await expect(readPayload('-', Readable.from(['{"id":', '"piped"}']))).resolves.toEqual({ id: 'piped' });
    await expect(readPayload(`@${join(dir, 'p.json')}`)).resolves.toEqual({ id: 'from a file' });
  });

  it.each([
    ['malformed', '{"id":', /^<payload-json> must be JSON: /],
    ['empty', '   ', /^<payload-json> is empty; give the payload as JSON/],
    ['a missing file', '@/nonexistent/p.json', /^cannot read payload file \/nonexistent\/p\.json: ENOENT$/],
  ])('refuses %s input in one UsageError line', async (_case, argument, message) => {
    const error = await readPayload(argument).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain('\n');
  });

  it('stops reading stdin far past any payload the limit admits', async () => {
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    const endless = Readable.from((function* () {
      for (;;) yield chunk;
    })());
    await expect(readPayload('-', endless)).rejects.toThrow(/^the payload on stdin is over 16 MiB; a payload is at most 1 MiB of JSON$/);
  });
});

describe('option values are one line of printable text', () => {
  it.each([
    ['an escape', 'a\u001b[31m', 'U+001B', 2],
    ['a line feed', 'a\nb', 'U+000A', 2],
    ['a carriage return', 'ok\rforged', 'U+000D', 3],
    ['DEL', 'a\u007f', 'U+007F', 2],
    ['a C1 control', 'a\u009b', 'U+009B', 2],
    ['a right-to-left override', 'txt\u202Eexe', 'U+202E', 4],
  ])('refuses %s, naming it and where, never echoing the value', (_case, value, code, position) => {
    expect(() => assertPrintable('--reason', value, { multiline: false })).toThrow(
      new UsageError(`--reason must be one line of printable text: it contains the control character ${code} at position ${position}`),
    );
  });

  it('lets arguments span lines (a pretty-printed payload), and accepts any printable text', () => {
    expect(() => assertPrintable('<payload-json>', '{\n\t"a": 1\r\n}', { multiline: true })).not.toThrow();
    expect(() => assertPrintable('<payload-json>', '{"a":"\u001b"}', { multiline: true })).toThrow(/U\+001B/);
    expect(() => assertPrintable('--actor', 'Zoë Ødegård (on call) — 日本', { multiline: false })).not.toThrow();
  });
});
