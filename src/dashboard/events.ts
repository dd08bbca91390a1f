import { rolloutHistory } from '../rollout/history.js';
import type { Pool } from '../db/pool.js';

/** One audit event as the page lists it: what changed in words, never the raw documents. */
export interface EventView {
  id: string;
  at: string;
  actor: string;
  action: string;
  jobType: string | null;
  change: string;
  reason: string | null;
}

type Fields = Record<string, unknown>;
const isFields = (value: unknown): value is Fields => typeof value === 'object' && value !== null && !Array.isArray(value);
const percentOf = (basisPoints: unknown) => `${Number(basisPoints) / 100} %`;
/** Fields an event may show as they are: counts, steps and states. Anything else (an error text, ids) is left out. */
const SHOWN = /^(step|state|plan|steps|moved|quarantined|batches|retried|notRetried|count|total|findings|types|tracking|deleted|archived)$/;

function scalar(value: unknown): string | undefined {
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'string' && value.length <= 80) return value;
  if (Array.isArray(value) && value.every((item) => typeof item === 'string')) return value.join(', ');
  return undefined;
}

/**
 * An event's before and after in words: a flag change as `5 % → 10 %` or `kill switch ON`, a
 * plan step as `step 2 → 3`, anything else as its whitelisted scalar fields. The page must not
 * show what an audit document may carry beyond that (an error message quoting a payload).
 */
export function describeChange(before: unknown, after: unknown): string {
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
  const fields = (record: Fields) =>
    Object.entries(record)
      .filter(([key]) => SHOWN.test(key))
      .flatMap(([key, value]) => {
        const text = scalar(value);
        return text === undefined ? [] : [`${key} ${text}`];
      })
      .join(', ');
  return [fields(was) && `from ${fields(was)}`, fields(now)].filter(Boolean).join(' to ') || '-';
}

/** The newest audit events, described. */
export async function recentEvents(pool: Pool, limit = 50): Promise<EventView[]> {
  const events = await rolloutHistory(pool, { limit });
  return events.map((event) => ({
    id: event.id,
    at: event.at,
    actor: event.actor,
    action: event.action,
    jobType: event.jobType,
    change: describeChange(event.before, event.after),
    reason: event.reason,
  }));
}
