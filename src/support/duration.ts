import ms, { type StringValue } from 'ms';
import prettyMilliseconds from 'pretty-ms';

/**
 * One rule for every duration cutover reads, on the command line and in plan files alike: a
 * bare number is seconds (`90` is a minute and a half), anything else carries its unit (`500ms`,
 * `90s`, `30m`, `2h`, `7d`). ms() alone would read a bare number as milliseconds.
 */
export const DURATION_RULE = 'a number with a unit (500ms, 90s, 30m, 2h, 7d); a bare number is seconds';

const BARE_NUMBER = /^\d+(\.\d+)?$/;

/** Seconds, or undefined when `value` is not a duration (negative, unitless text, NaN). */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  const text = value.trim();
  if (BARE_NUMBER.test(text)) return Number(text);
  const millis = ms(text as StringValue) as number | undefined;
  return typeof millis === 'number' && Number.isFinite(millis) && millis >= 0 ? millis / 1000 : undefined;
}

/** Exactly what was given, in words: 5400 is "1 hour 30 minutes", never rounded to "2 hours". */
export function formatDuration(seconds: number): string {
  if (seconds === 0) return '0 seconds';
  return prettyMilliseconds(seconds * 1000, { verbose: true, separateMilliseconds: true });
}
