import type { Pool } from '../db/pool.js';

export interface RolloutEventRow {
  id: string;
  at: string;
  actor: string;
  action: string;
  jobType: string | null;
  before: unknown;
  after: unknown;
  reason: string | null;
}

/**
 * The audit log, newest first. Ordered by the table's bigint id: a bare `id` would name the
 * text column of the select list and sort '10' before '9'.
 */
export async function rolloutHistory(pool: Pool, options: { type?: string; limit?: number } = {}): Promise<RolloutEventRow[]> {
  const { rows } = await pool.query<RolloutEventRow & { at: Date }>(
    `SELECT id::text, at, actor, action, "jobType", before, after, reason FROM "RolloutEvent"
      WHERE ($1::text IS NULL OR "jobType" = $1) ORDER BY "RolloutEvent".id DESC LIMIT $2`,
    [options.type ?? null, options.limit ?? 100],
  );
  return rows.map((row) => ({ ...row, at: (row.at as unknown as Date).toISOString() }));
}

type Fields = Record<string, unknown>;
const isFields = (value: unknown): value is Fields => typeof value === 'object' && value !== null && !Array.isArray(value);
const percentOf = (basisPoints: unknown) => `${Number(basisPoints) / 100} %`;

function scalar(value: unknown): string | undefined {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'string' && value.length <= 80) return value;
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value.join(', ');
  return undefined;
}

/**
 * An audit event's before and after in words: a flag change as `5 % → 10 %` or `kill switch
 * ON`, a plan step as `step 2 → 3`, anything else as its fields. `keys`, when given, is the
 * only fields shown, and only as plain values (the dashboard must not show what a document may
 * carry beyond that, such as an error quoting a payload); without it every field is shown.
 */
export function describeChange(before: unknown, after: unknown, options: { keys?: RegExp } = {}): string {
  const was = isFields(before) ? before : {};
  const now = isFields(after) ? after : {};
  if (after === null && 'basisPoints' in was) return `flag removed (was ${percentOf(was.basisPoints)})`;
  if ('basisPoints' in now) {
    const changes: string[] = [];
    if (was.basisPoints !== now.basisPoints) changes.push('basisPoints' in was ? `${percentOf(was.basisPoints)} → ${percentOf(now.basisPoints)}` : `${percentOf(now.basisPoints)} (new flag)`);
    if (Boolean(was.killSwitch) !== Boolean(now.killSwitch)) changes.push(`kill switch ${now.killSwitch ? 'ON' : 'off'}`);
    if ('fallbackToLegacy' in was && was.fallbackToLegacy !== now.fallbackToLegacy) changes.push(`fallback ${now.fallbackToLegacy ? 'on' : 'off'}`);
    return changes.join(', ') || `unchanged (${percentOf(now.basisPoints)}${now.killSwitch ? ', kill switch ON' : ''})`;
  }
  // Plan steps are stored 0-based; people count from 1.
  if (typeof was.step === 'number' && typeof now.step === 'number') return `step ${was.step + 1} → ${now.step + 1}${typeof now.does === 'string' ? `: ${now.does}` : ''}`;
  const { keys } = options;
  const fields = (record: Fields) =>
    Object.entries(record)
      .filter(([key]) => !keys || keys.test(key))
      .flatMap(([key, value]) => {
        const text = scalar(value) ?? (keys ? undefined : JSON.stringify(value));
        return text === undefined ? [] : [`${key} ${text}`];
      })
      .join(', ');
  return [fields(was) && `from ${fields(was)}`, fields(now)].filter(Boolean).join(' to ') || '-';
}
