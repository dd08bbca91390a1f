import { InvalidArgumentError } from 'commander';
import ms, { type StringValue } from 'ms';
import { messageOf } from '../errors.js';

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

export function jsonValue(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch (error) {
    throw new InvalidArgumentError(`must be JSON (${messageOf(error)})`);
  }
}

/** "90s", "30m", "2h", "7d" to seconds. */
export function durationSeconds(value: string): number {
  const parsed = ms(value.trim() as StringValue);
  if (typeof parsed !== 'number' || !Number.isFinite(parsed) || parsed < 0) {
    throw new InvalidArgumentError(`must be a duration like 90s, 30m, 2h or 7d, got '${value}'`);
  }
  return parsed / 1000;
}
