import { readFile, stat } from 'node:fs/promises';
import { InvalidArgumentError } from 'commander';
import { DURATION_RULE, parseDuration } from '../support/duration.js';
import { UsageError, messageOf } from '../support/errors.js';
import { MAX_PAYLOAD_BYTES } from '../jobs/registry.js';
import { errorCode } from '../support/pg-errors.js';
import { unprintableIn } from '../support/printable.js';

/** Commander argument parsers that state the rule in their error (exit 2 via CommanderError). */
export function integerIn(min: number, max: number): (value: string) => number {
  return (value) => {
    if (!/^-?\d+$/.test(value.trim())) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}, got '${value}'`);
    const parsed = Number(value);
    if (parsed < min || parsed > max) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}, got '${value}'`);
    return parsed;
  };
}

export function commaList(value: string): string[] {
  const items = value.split(',').map((item) => item.trim()).filter(Boolean);
  if (!items.length) throw new InvalidArgumentError(`must be a comma-separated list, got '${value}'`);
  return items;
}

/** A duration option to seconds, by the one rule of src/support/duration.ts (a bare number is seconds). */
export function durationSeconds(value: string): number {
  const seconds = parseDuration(value);
  if (seconds === undefined) throw new InvalidArgumentError(`must be ${DURATION_RULE}, got '${value}'`);
  return seconds;
}

/**
 * Refuses a value holding control characters, naming where but never echoing the value (it may
 * be a connection string). `multiline` allows tabs and line breaks (a pretty-printed payload).
 */
export function assertPrintable(name: string, value: string, options: { multiline: boolean }): void {
  const found = unprintableIn(value, options);
  if (!found) return;
  throw new UsageError(`${name} must be ${options.multiline ? 'printable text' : 'one line of printable text'}: it contains the control character ${found.codePoint} at position ${found.index + 1}`);
}

/**
 * Raw input read for a payload: no payload within the limit is this big even pretty-printed,
 * and a bound keeps `cutover enqueue t - < /dev/zero` from eating the machine's memory.
 */
const MAX_PAYLOAD_INPUT_BYTES = 16 * MAX_PAYLOAD_BYTES;

/**
 * The `<payload-json>` argument: JSON as typed, `-` to read it from stdin, or `@file` to read it
 * from a file (a command line holds at most 128 KiB per argument on Linux). One UsageError line
 * when it is not JSON; the size limit and the schema are the registry's to check.
 */
export async function readPayload(argument: string, stdin: NodeJS.ReadableStream = process.stdin): Promise<unknown> {
  let raw: string;
  let source: string;
  if (argument === '-') {
    source = 'the payload on stdin';
    raw = await readBounded(stdin, source);
  } else if (argument.startsWith('@')) {
    const file = argument.slice(1);
    source = `payload file ${file}`;
    const info = await stat(file).catch((error: unknown) => {
      throw new UsageError(`cannot read ${source}: ${errorCode(error) ?? messageOf(error)}`);
    });
    if (!info.isFile()) throw new UsageError(`${source} is not a file`);
    if (info.size > MAX_PAYLOAD_INPUT_BYTES) throw new UsageError(`${source} is ${Math.ceil(info.size / 1024 / 1024)} MiB; a payload is at most ${MAX_PAYLOAD_BYTES / 1024 / 1024} MiB of JSON`);
    raw = await readFile(file, 'utf8');
  } else {
    source = '<payload-json>';
    raw = argument;
  }
  if (!raw.trim()) throw new UsageError(`${source} is empty; give the payload as JSON, e.g. '{"documentId": "d1"}'`);
  try {
    return JSON.parse(raw);
  } catch (error) {
    throw new UsageError(`${source} must be JSON: ${messageOf(error)}`);
  }
}

async function readBounded(stream: NodeJS.ReadableStream, source: string): Promise<string> {
  let bytes = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    bytes += buffer.length;
    if (bytes > MAX_PAYLOAD_INPUT_BYTES) throw new UsageError(`${source} is over ${MAX_PAYLOAD_INPUT_BYTES / 1024 / 1024} MiB; a payload is at most ${MAX_PAYLOAD_BYTES / 1024 / 1024} MiB of JSON`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
