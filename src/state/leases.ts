import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import pg from 'pg';
import { poolConfig } from '../db/pool.js';
import { detectTransactionPooler, urlSaysPooled } from '../db/pooler.js';
import { isUndefinedTable } from '../support/pg-errors.js';
import { RuntimeFailure } from '../support/errors.js';
import type { Logger } from '../support/log.js';

/**
 * The locks of commands that run for minutes (migrate, rollback, a plan's controller): held
 * from the first statement to the last, across many transactions. Two ways to hold them:
 *
 * - **session**: a session advisory lock on a connection kept open for the purpose, as before.
 *   Only a real session keeps it: directly, or on DIRECT_URL. Ending the connection releases
 *   it, so a holder killed with -9 lets go at once.
 * - **lease**: a row in "CutoverLease" with an expiry the holder renews every
 *   LEASE_RENEW_MS. Used when the URL is a transaction pooler's: there a session lock is taken
 *   on whichever server connection served the statement and outlives the command (until the
 *   pooler recycles the connection, 10 to 60 minutes later). A holder killed with -9 lets go
 *   when its lease expires, LEASE_TTL_SECONDS at most.
 *
 * The two exclude each other, so processes with and without DIRECT_URL can run side by side:
 * a lease is taken in a transaction that also takes the key's advisory lock
 * (transaction-scoped, so a pooler keeps it for the transaction): a session holder makes that
 * fail. A session holder, once it has its lock, looks for a live lease and lets go if there is
 * one. Whichever of two racing takers comes second sees the first.
 */

export type LockMode = 'shared' | 'exclusive';

/** A lock's identity: its advisory lock is (hashtext(space), hashtext(name)), its lease rows carry both. */
export interface LockKey {
  space: string;
  name: string;
}

/** How long a dead holder's lease blocks the next taker, at most. */
export const LEASE_TTL_SECONDS = 30;
/** How often a live holder renews its leases: three renewals per TTL, so one failed renewal loses nothing. */
export const LEASE_RENEW_MS = 10_000;

export interface LockHolderOptions {
  /** The connection's application_name, and the start of the lease holder's name: `cutover-migrate`. */
  applicationName: string;
  /** Where a lost or unrenewable lease is reported. */
  log?: Logger | undefined;
  /** @defaultValue LEASE_TTL_SECONDS */
  ttlSeconds?: number;
  /** @defaultValue LEASE_RENEW_MS */
  renewMs?: number;
  /** Force a kind instead of probing the URL for a transaction pooler. */
  kind?: 'session' | 'lease';
}

/** One connection holding any number of locks; release() lets go of all of them. */
export interface LockHolder {
  readonly kind: 'session' | 'lease';
  /** The name lease rows carry (`cutover-migrate@host:pid:…`); a session holder's is its backend pid. */
  readonly holder: string;
  /** Takes the lock if no one holds it in a conflicting mode; never waits. */
  tryTake(key: LockKey, mode: LockMode): Promise<boolean>;
  release(): Promise<void>;
}

const pooled = new Map<string, Promise<boolean>>();

/** Whether the URL reaches Postgres through a transaction pooler, probed once per URL and process. */
export function isTransactionPooler(url: string): Promise<boolean> {
  if (urlSaysPooled(url)) return Promise.resolve(true);
  let known = pooled.get(url);
  if (!known) {
    known = detectTransactionPooler(url);
    // A failed probe (the database away) is asked again next time.
    known.catch(() => pooled.delete(url));
    pooled.set(url, known);
  }
  return known;
}

const advisoryTry = { shared: 'pg_try_advisory_lock_shared', exclusive: 'pg_try_advisory_lock' } as const;
const advisoryUnlock = { shared: 'pg_advisory_unlock_shared', exclusive: 'pg_advisory_unlock' } as const;
const advisoryXactTry = { shared: 'pg_try_advisory_xact_lock_shared', exclusive: 'pg_try_advisory_xact_lock' } as const;

/** A live lease of the key that conflicts with taking it in `$3` mode, held by someone other than `$4`. */
const conflictingLease = `
SELECT EXISTS (
  SELECT 1 FROM "CutoverLease"
   WHERE space = $1 AND name = $2 AND "expiresAt" > now() AND holder <> $4 AND ($3 = 'exclusive' OR mode = 'exclusive')
) AS held`;

/** Expired leases of the key: their holders died without letting go. */
const deleteExpired = `DELETE FROM "CutoverLease" WHERE space = $1 AND name = $2 AND "expiresAt" <= now()`;

const insertLease = `
INSERT INTO "CutoverLease" (space, name, holder, mode, "expiresAt")
VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::float8))
ON CONFLICT (space, name, holder) DO UPDATE SET mode = EXCLUDED.mode, "expiresAt" = EXCLUDED."expiresAt"`;

const renewLeases = `UPDATE "CutoverLease" SET "expiresAt" = now() + make_interval(secs => $2::float8) WHERE holder = $1`;

const deleteLeases = `DELETE FROM "CutoverLease" WHERE holder = $1`;

/**
 * A holder on its own connection to `url`: session advisory locks when the URL is a session,
 * leases when it is a transaction pooler's (see above).
 */
export async function openLockHolder(url: string, options: LockHolderOptions): Promise<LockHolder> {
  const kind = options.kind ?? ((await isTransactionPooler(url)) ? 'lease' : 'session');
  const client = new pg.Client(poolConfig(url, { applicationName: options.applicationName }));
  client.on('error', () => undefined);
  await client.connect();
  try {
    return kind === 'session' ? await sessionHolder(client) : leaseHolder(client, options);
  } catch (error) {
    await client.end().catch(() => undefined);
    throw error;
  }
}

async function sessionHolder(client: pg.Client): Promise<LockHolder> {
  const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const holder = `session ${rows[0]!.pid}`;
  return {
    kind: 'session',
    holder,
    async tryTake(key, mode) {
      const { rows: taken } = await client.query<{ locked: boolean }>(`SELECT ${advisoryTry[mode]}(hashtext($1), hashtext($2)) AS locked`, [key.space, key.name]);
      if (!taken[0]?.locked) return false;
      const { rows: leased } = await client.query<{ held: boolean }>(conflictingLease, [key.space, key.name, mode, holder]).catch((error: unknown) => {
        // A database migrated before leases existed has none.
        if (isUndefinedTable(error)) return { rows: [{ held: false }] };
        throw error;
      });
      if (!leased[0]?.held) return true;
      await client.query(`SELECT ${advisoryUnlock[mode]}(hashtext($1), hashtext($2))`, [key.space, key.name]);
      return false;
    },
    // Ending the session releases every lock it holds, even if the process dies first.
    release: () => client.end().catch(() => undefined),
  };
}

function leaseHolder(client: pg.Client, options: LockHolderOptions): LockHolder {
  const holder = `${options.applicationName}@${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const ttl = options.ttlSeconds ?? LEASE_TTL_SECONDS;
  const held = new Set<string>();
  let lost = false;
  let renewing: Promise<void> | undefined;
  const renew = async () => {
    try {
      const { rowCount } = await client.query(renewLeases, [holder, ttl]);
      if ((rowCount ?? 0) < held.size && !lost) {
        lost = true;
        options.log?.error({ holder, held: held.size, renewed: rowCount }, `${options.applicationName} lost a lease it held (it expired and was taken over: this process stalled or lost the database for over ${ttl} s); another command may now run beside it`);
      }
    } catch (error) {
      options.log?.warn({ err: error, holder }, `${options.applicationName} could not renew its leases; trying again in ${Math.round((options.renewMs ?? LEASE_RENEW_MS) / 1000)} s`);
    }
  };
  const timer = setInterval(() => {
    if (held.size) renewing ??= renew().finally(() => (renewing = undefined));
  }, options.renewMs ?? LEASE_RENEW_MS);
  timer.unref();
  return {
    kind: 'lease',
    holder,
    async tryTake(key, mode) {
      // One transaction: a pooler serves it on one server connection, which keeps the
      // transaction-scoped advisory lock until COMMIT. The lock keeps out session holders and
      // a second taker of the key in a conflicting mode while this one looks and writes, so
      // two processes racing for an expired lease cannot both get it.
      await client.query('BEGIN');
      try {
        const { rows } = await client.query<{ locked: boolean }>(`SELECT ${advisoryXactTry[mode]}(hashtext($1), hashtext($2)) AS locked`, [key.space, key.name]);
        let taken = rows[0]?.locked === true;
        if (taken) {
          await client.query(deleteExpired, [key.space, key.name]);
          const { rows: leased } = await client.query<{ held: boolean }>(conflictingLease, [key.space, key.name, mode, holder]);
          taken = !leased[0]?.held;
        }
        if (taken) await client.query(insertLease, [key.space, key.name, holder, mode, ttl]);
        await client.query('COMMIT');
        if (taken) held.add(`${key.space}\0${key.name}`);
        return taken;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => undefined);
        if (isUndefinedTable(error)) {
          throw new RuntimeFailure(`this database has no "CutoverLease" table, which locks need behind a transaction pooler without DIRECT_URL: run \`cutover db migrate\` (or give DIRECT_URL)`, { cause: error });
        }
        throw error;
      }
    },
    async release() {
      clearInterval(timer);
      await renewing;
      // If this fails (the database away), the rows expire within the TTL.
      if (held.size) await client.query(deleteLeases, [holder]).catch(() => undefined);
      await client.end().catch(() => undefined);
    },
  };
}
