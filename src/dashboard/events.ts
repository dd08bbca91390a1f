import { describeChange, rolloutHistory } from '../state/history.js';
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

/** Fields an event may show as they are: counts, steps and states. Anything else (an error text, ids) is left out. */
const SHOWN = /^(step|state|plan|steps|moved|quarantined|batches|retried|notRetried|count|total|findings|types|tracking|deleted|archived)$/;

/** The newest audit events, described. */
export async function recentEvents(pool: Pool, limit = 50): Promise<EventView[]> {
  const events = await rolloutHistory(pool, { limit });
  return events.map((event) => ({
    id: event.id,
    at: event.at,
    actor: event.actor,
    action: event.action,
    jobType: event.jobType,
    change: describeChange(event.before, event.after, { keys: SHOWN }),
    reason: event.reason,
  }));
}
