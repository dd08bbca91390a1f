import { userInfo } from 'node:os';
import type { Queryable } from '../db/pool.js';

/**
 * The audit log (`RolloutEvent`): every flag change, plan transition, migrate, rollback and
 * reconcile fix appends one row, in the same transaction as the change it records.
 */
export interface AuditEntry {
  actor: string;
  action: string;
  jobType?: string | null;
  before?: unknown;
  after?: unknown;
  reason?: string | null;
}

/** Appends one row to the audit log, inside the caller's transaction if `db` is a client in one. */
export async function audit(db: Queryable, entry: AuditEntry): Promise<void> {
  await db.query(
    `INSERT INTO "RolloutEvent" (actor, action, "jobType", before, after, reason) VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6)`,
    [entry.actor, entry.action, entry.jobType ?? null, JSON.stringify(entry.before ?? null), JSON.stringify(entry.after ?? null), entry.reason ?? null],
  );
}

/** Who an operator command acts as when `--actor` is not given: the OS user. */
export function defaultActor(): string {
  try {
    return userInfo().username || 'unknown';
  } catch {
    return 'unknown';
  }
}
