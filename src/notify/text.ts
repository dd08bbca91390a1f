import type { Notification, Severity } from './webhook.js';
import type { RolloutEventRow } from '../state/history.js';
import { DEFAULT_FLAG } from '../state/flags.js';

/**
 * What each notification says. Made once, when the loop copies the source row, and stored with
 * its delivery: every retry and every process sends the same words.
 */

/** The audit actions worth telling about: the ramp, the ways back, and people overriding gates. */
export const NOTIFIED_ACTIONS: readonly string[] = [
  'plan.start',
  'plan.setWeight',
  'plan.step',
  'plan.advance',
  'plan.advance.forced',
  'plan.completed',
  'plan.aborted',
  'flag.set',
  'flag.kill',
  'flag.unkill',
  'rollback',
];

/** A "RolloutEvent" row as the loop reads it (json_agg: times as ISO strings), as the history reads it. */
export type AuditRow = RolloutEventRow;

export interface ReconcileRow {
  id: string;
  at: string;
  findings: number;
  summary: { counts?: Record<string, number>; types?: string[] } | null;
}

interface FlagShape {
  basisPoints?: number;
  killSwitch?: boolean;
}

const field = (value: unknown, key: string): unknown => (value && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined);
const percent = (flag: unknown): string => {
  const points = (flag as FlagShape | null)?.basisPoints;
  return typeof points === 'number' ? `${points / 100} %` : '0 %';
};
const iso = (at: string): string => new Date(at).toISOString();

function auditText(row: AuditRow): { text: string; severity: Severity } | undefined {
  const type = row.jobType ?? DEFAULT_FLAG;
  const because = row.reason ? ` (${row.reason})` : '';
  const step = (value: unknown) => (typeof field(value, 'step') === 'number' ? (field(value, 'step') as number) + 1 : '?');
  switch (row.action) {
    case 'plan.start':
      return { severity: 'info', text: `plan ${String(field(row.after, 'plan') ?? '?')} started for ${type} (${String(field(row.after, 'steps') ?? '?')} steps)` };
    case 'plan.setWeight':
      return { severity: 'info', text: `${type}: ${percent(row.before)} → ${percent(row.after)} of new jobs go to pg-boss${because}` };
    case 'plan.step':
      return { severity: 'info', text: `${type}: plan at step ${step(row.after)}: ${String(field(row.after, 'does') ?? '')}` };
    case 'plan.advance':
      return { severity: 'info', text: `${type}: plan advanced by hand to step ${step(row.after)}: ${String(field(row.after, 'does') ?? '')}` };
    case 'plan.advance.forced':
      return { severity: 'warning', text: `${type}: plan FORCED past its gates to step ${step(row.after)}: ${String(field(row.after, 'does') ?? '')}` };
    case 'plan.completed':
      return { severity: 'info', text: `plan ${String(field(row.after, 'plan') ?? '')} for ${type} completed` };
    case 'plan.aborted': {
      // Audit rows written before the cause was recorded say it only in their reason's words.
      const cause = field(row.after, 'cause');
      const gate = cause === undefined ? (row.reason?.startsWith('gate failed') ?? false) : cause === 'gate';
      return { severity: 'critical', text: `${gate ? 'GATE FAILED: ' : ''}plan for ${type} aborted at step ${step(row.before)} and rolled back to legacy${because}` };
    }
    case 'flag.kill':
      return { severity: 'critical', text: `kill switch ON for ${type}: every new job goes to legacy${because}` };
    case 'flag.unkill':
      return { severity: 'warning', text: `kill switch released for ${type}: ${percent(row.after)} of new jobs go to pg-boss again${because}` };
    case 'flag.set': {
      // Only routing changes are news; a salt or fallback change is in the audit log.
      if (field(row.before, 'basisPoints') === field(row.after, 'basisPoints')) return undefined;
      return { severity: 'info', text: `${type}: ${percent(row.before)} → ${percent(row.after)} of new jobs go to pg-boss${because}` };
    }
    case 'rollback': {
      const moved = field(row.after, 'moved');
      const active = field(row.after, 'stillActive');
      return { severity: 'warning', text: `rollback of ${type}: ${String(moved ?? 0)} jobs back on legacy${active ? `, ${String(active)} still running on pg-boss` : ''}${because}` };
    }
    default:
      return undefined;
  }
}

/** An audit row's notification; undefined for actions (or changes) not worth one. */
export function notificationOf(row: AuditRow): Notification | undefined {
  const said = auditText(row);
  if (!said) return undefined;
  return {
    id: `event:${row.id}`,
    kind: row.action,
    severity: said.severity,
    jobType: row.jobType,
    at: iso(row.at),
    text: said.text,
    actor: row.actor,
    reason: row.reason,
    details: { before: row.before ?? null, after: row.after ?? null },
  };
}

export function reconcileNotification(row: ReconcileRow): Notification | undefined {
  if (row.findings <= 0) return undefined;
  const counts = Object.entries(row.summary?.counts ?? {}).filter(([, n]) => n > 0);
  const types = row.summary?.types ?? [];
  return {
    id: `reconcile:${row.id}`,
    kind: 'reconcile.findings',
    severity: 'warning',
    jobType: types.length === 1 ? types[0]! : null,
    at: iso(row.at),
    text: `reconcile found ${row.findings} discrepanc${row.findings === 1 ? 'y' : 'ies'} (${counts.map(([name, n]) => `${name} ${n}`).join(', ')}): 'cutover reconcile --fix' repairs what is safe`,
    actor: null,
    reason: null,
    details: { findings: row.findings, counts: row.summary?.counts ?? {}, types },
  };
}

export function deadLetterNotification(queue: string, count: number, threshold: number, at: Date): Notification {
  const type = queue.replace(/\.dlq$/, '');
  return {
    // A queue can cross the same level again after a retry emptied it: the time keeps each crossing apart.
    id: `dlq:${queue}:${Math.floor(count / threshold) * threshold}:${at.getTime()}`,
    kind: 'dlq.threshold',
    severity: 'warning',
    jobType: type,
    at: at.toISOString(),
    text: `${type}: ${count} dead letter${count === 1 ? '' : 's'} (threshold ${threshold}): 'cutover dlq list --type ${type}' shows them`,
    actor: null,
    reason: null,
    details: { queue, count, threshold },
  };
}
