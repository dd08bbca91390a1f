import pg from 'pg';
import { audit } from './audit.js';
import { backoffMs } from '../db/outage.js';
import { poolConfig, type Pool, type PoolClient, type Queryable } from '../db/pool.js';
import { withTransaction } from '../db/transaction.js';
import { UsageError } from '../support/errors.js';
import type { Logger } from '../support/log.js';

/** One row of RolloutFlag: the routing of a job type, or of every type (`*`). */
export interface Flag {
  jobType: string;
  basisPoints: number;
  killSwitch: boolean;
  salt: string;
  fallbackToLegacy: boolean;
  /** Set by `cutover finalize`: every new job goes to pg-boss, tracked in the legacy table or not. */
  finalized?: { tracking: boolean };
}

/** Postgres NOTIFY channel on which every flag change is announced. */
export const FLAGS_CHANNEL = 'cutover_flags';
/**
 * The flag row of every job type, `*`: its percentage routes the types without a flag of their
 * own, and its kill switch stops them all.
 */
export const DEFAULT_FLAG = '*';

/**
 * Tells every FlagCache listening on FLAGS_CHANNEL that a type's routing changed. Sent inside
 * the change's transaction, Postgres delivers it at commit, and not at all on a rollback.
 */
export async function announceFlagChange(db: Queryable, jobType: string): Promise<void> {
  await db.query('SELECT pg_notify($1, $2)', [FLAGS_CHANNEL, jobType]);
}

export async function readFlags(db: Queryable): Promise<Map<string, Flag>> {
  const { rows } = await db.query<Flag & { finalTracking: boolean | null }>(
    `SELECT f."jobType", f."basisPoints", f."killSwitch", f.salt, f."fallbackToLegacy", fin.tracking AS "finalTracking"
       FROM "RolloutFlag" f LEFT JOIN "RolloutFinal" fin ON fin."jobType" = f."jobType"`,
  );
  return new Map(
    rows.map(({ finalTracking, ...flag }) => [flag.jobType, finalTracking === null ? flag : { ...flag, finalized: { tracking: finalTracking } }]),
  );
}

/** A finalized type's percentage is pinned at 100 %: lowering it, or removing its flag, must say so first. */
async function assertNotFinalized(db: Queryable, jobType: string, what: string): Promise<void> {
  const { rows } = await db.query(`SELECT 1 FROM "RolloutFinal" WHERE "jobType" = $1`, [jobType]);
  if (rows.length) throw new UsageError(`${jobType} is finalized (pinned to pg-boss, cutover finalize): ${what} needs --unfinalize; nothing changed`);
}

/** Ends a finalization in the caller's transaction (audited there by the change that needed it). */
async function unfinalize(db: Queryable, jobType: string): Promise<boolean> {
  const { rowCount } = await db.query(`DELETE FROM "RolloutFinal" WHERE "jobType" = $1`, [jobType]);
  return (rowCount ?? 0) > 0;
}

/**
 * Percent as an operator types it ("25", "25%", "12.5") to basis points; anything else is a
 * UsageError that states the rule.
 */
export function parsePercent(input: string): number {
  const text = input.trim().replace(/%$/, '');
  if (!/^\d{1,3}(\.\d{1,2})?$/.test(text) || Number(text) > 100) {
    throw new UsageError(`percent must be a number from 0 to 100 with at most two decimals, got '${input}'`);
  }
  return Math.round(Number(text) * 100);
}

export interface FlagChange {
  jobType: string;
  basisPoints?: number;
  killSwitch?: boolean;
  fallbackToLegacy?: boolean;
  salt?: string;
  /** Lowering a finalized type below 100 % ends its finalization (else refused). */
  unfinalize?: boolean;
}

/**
 * Changes one flag, audits it and announces it, all in one transaction: a change nobody can
 * see or that has no audit row cannot happen. Returns the flag before and after.
 */
export async function changeFlag(
  pool: Pool,
  change: FlagChange,
  who: { actor: string; action: string; reason?: string | null },
  client?: PoolClient,
): Promise<{ before: Flag | null; after: Flag }> {
  const apply = async (db: PoolClient): Promise<{ before: Flag | null; after: Flag }> => {
    const existing = await db.query<Flag>(
      `SELECT "jobType", "basisPoints", "killSwitch", salt, "fallbackToLegacy" FROM "RolloutFlag" WHERE "jobType" = $1 FOR UPDATE`,
      [change.jobType],
    );
    const before = existing.rows[0] ?? null;
    if (change.basisPoints !== undefined && change.basisPoints < 10_000) {
      if (change.unfinalize) await unfinalize(db, change.jobType);
      else await assertNotFinalized(db, change.jobType, `routing it below 100 %`);
    }
    const { rows } = await db.query<Flag>(
      `INSERT INTO "RolloutFlag" ("jobType", "basisPoints", "killSwitch", "fallbackToLegacy", salt, "updatedBy", "updatedAt")
       VALUES ($1, COALESCE($2, 0), COALESCE($3, false), COALESCE($4, true), COALESCE($5, ''), $6, now())
       ON CONFLICT ("jobType") DO UPDATE SET
         "basisPoints" = COALESCE($2, "RolloutFlag"."basisPoints"),
         "killSwitch" = COALESCE($3, "RolloutFlag"."killSwitch"),
         "fallbackToLegacy" = COALESCE($4, "RolloutFlag"."fallbackToLegacy"),
         salt = COALESCE($5, "RolloutFlag".salt),
         "updatedBy" = $6, "updatedAt" = now()
       RETURNING "jobType", "basisPoints", "killSwitch", salt, "fallbackToLegacy"`,
      [change.jobType, change.basisPoints ?? null, change.killSwitch ?? null, change.fallbackToLegacy ?? null, change.salt ?? null, who.actor],
    );
    const after = rows[0]!;
    await audit(db, { actor: who.actor, action: who.action, jobType: change.jobType, before, after, reason: who.reason ?? null });
    await announceFlagChange(db, change.jobType);
    return { before, after };
  };
  return client ? apply(client) : withTransaction(pool, apply);
}

/**
 * Removes a job type's own flag, so the type follows `*` again; audited and announced in one
 * transaction. Returns the flag removed, or null when the type had none.
 */
export async function removeFlag(pool: Pool, jobType: string, who: { actor: string; reason?: string | null; unfinalize?: boolean }): Promise<Flag | null> {
  if (jobType === DEFAULT_FLAG) throw new UsageError(`the ${DEFAULT_FLAG} flag cannot be removed: set it to 0 instead`);
  return withTransaction(pool, async (db) => {
    if (who.unfinalize) await unfinalize(db, jobType);
    else await assertNotFinalized(db, jobType, 'removing its flag');
    const { rows } = await db.query<Flag>(`DELETE FROM "RolloutFlag" WHERE "jobType" = $1 RETURNING "jobType", "basisPoints", "killSwitch", salt, "fallbackToLegacy"`, [jobType]);
    const before = rows[0] ?? null;
    if (!before) return null;
    await audit(db, { actor: who.actor, action: 'flag.unset', jobType, before, after: null, reason: who.reason ?? null });
    await announceFlagChange(db, jobType);
    return before;
  });
}

export interface FlagCacheOptions {
  pool: Pool;
  /** For the LISTEN connection; without it the cache relies on its TTL alone. */
  databaseUrl?: string;
  /** @defaultValue 5000 */
  ttlMs?: number;
  log?: Logger;
  now?: () => number;
}

/**
 * Flags cached per process. A change is seen at once through LISTEN/NOTIFY; should a
 * notification be lost (connection drop, or an engine without LISTEN), a process is stale for
 * at most one TTL: every read older than `ttlMs` goes back to the table.
 */
export class FlagCache {
  private flags: Map<string, Flag> | undefined;
  private loadedAt = 0;
  /** Bumped by every invalidation; a load counts only for the generation it started in. */
  private generation = 0;
  private loading: { generation: number; flags: Promise<Map<string, Flag>> } | undefined;
  private listener: pg.Client | undefined;
  private listening = false;
  private relistenTimer: NodeJS.Timeout | undefined;
  private relistenFailures = 0;
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(private readonly options: FlagCacheOptions) {
    this.ttlMs = options.ttlMs ?? 5000;
    this.now = options.now ?? Date.now;
  }

  /**
   * Subscribes to flag changes; safe to skip (the TTL still bounds staleness). A lost
   * connection (a Postgres restart) is re-established with backoff until `close()`, and the
   * cache is invalidated then, since notices sent meanwhile were missed.
   */
  async listen(): Promise<void> {
    if (!this.options.databaseUrl || this.listening) return;
    this.listening = true;
    if (!(await this.subscribe())) this.options.log?.warn('LISTEN unavailable for now; flags refresh on their TTL and the listener retries');
  }

  private async subscribe(): Promise<boolean> {
    const client = new pg.Client(poolConfig(this.options.databaseUrl!, { applicationName: 'cutover-flags' }));
    const lost = () => {
      if (this.listener !== client) return;
      this.listener = undefined;
      this.options.log?.warn('flag listener lost its connection; relying on the TTL until it is back');
      this.relisten();
    };
    client.on('error', lost);
    client.on('end', lost);
    client.on('notification', () => this.invalidate());
    try {
      await client.connect();
      await client.query(`LISTEN ${FLAGS_CHANNEL}`);
    } catch {
      client.removeAllListeners('end');
      await client.end().catch(() => undefined);
      this.relisten();
      return false;
    }
    if (!this.listening) {
      await client.end().catch(() => undefined);
      return false;
    }
    this.listener = client;
    this.relistenFailures = 0;
    this.invalidate();
    return true;
  }

  private relisten(): void {
    if (!this.listening || this.relistenTimer) return;
    this.relistenFailures += 1;
    this.relistenTimer = setTimeout(() => {
      this.relistenTimer = undefined;
      void this.subscribe();
    }, backoffMs(1000, this.relistenFailures));
    this.relistenTimer.unref();
  }

  invalidate(): void {
    this.generation += 1;
    this.loadedAt = 0;
  }

  async get(jobType: string): Promise<{ typeFlag: Flag | undefined; defaultFlag: Flag | undefined }> {
    const flags = await this.current();
    return { typeFlag: flags.get(jobType), defaultFlag: flags.get(DEFAULT_FLAG) };
  }

  /**
   * A load that started before a NOTIFY may have read the flags from before the change: it
   * must neither be trusted for the TTL nor be shared with callers who come after the NOTIFY,
   * or a kill switch could be missed for a whole TTL.
   */
  private async current(): Promise<Map<string, Flag>> {
    if (this.flags && this.now() - this.loadedAt < this.ttlMs) return this.flags;
    if (this.loading?.generation !== this.generation) {
      const generation = this.generation;
      const flags = readFlags(this.options.pool).then((loaded) => {
        if (generation === this.generation) {
          this.flags = loaded;
          this.loadedAt = this.now();
        }
        return loaded;
      });
      const loading = { generation, flags };
      this.loading = loading;
      void flags.finally(() => {
        if (this.loading === loading) this.loading = undefined;
      }).catch(() => undefined);
    }
    return this.loading.flags;
  }

  async close(): Promise<void> {
    this.listening = false;
    clearTimeout(this.relistenTimer);
    this.relistenTimer = undefined;
    const listener = this.listener;
    this.listener = undefined;
    await listener?.end().catch(() => undefined);
  }
}
