import type { PgBoss } from 'pg-boss';
import type { Pool } from '../db/pool.js';
import { notifyChannel } from '../pgboss-schema/reads.js';
import type { Logger } from '../support/log.js';
import { isConnectionError } from '../db/outage.js';

// Relies on (pg-boss 12.38): the db of a started PgBoss (getDb()) keeps the constructor's options
// as `config` (`useListenNotify` among them) and has `listen(channel, onNotification,
// onReconnect)`, which LISTENs on a session of its own, re-listens after a lost connection and
// calls onReconnect then, and resolves to a handle with `close()`.

/** A LISTEN for new jobs, until closed. */
export interface Listener {
  close(): Promise<void>;
}

interface ListeningDb {
  config?: { useListenNotify?: boolean };
  listen?: (channel: string, onNotification: (payload: string) => void, onReconnect: () => void) => Promise<Listener>;
}

/**
 * LISTENs for pg-boss's NOTIFY of new jobs where the boss does (a worker with a session to
 * listen on; not behind a transaction pooler without DIRECT_URL, where a LISTEN is heard by
 * whichever client gets its connection next), on a connection of its own made as pg-boss makes
 * its own. `onJob` gets the queue's name; `onMissed` follows a reconnect, when notifications may
 * have been lost. Undefined when not listening: the fetch loops then poll.
 */
export async function listenForJobs(
  boss: PgBoss,
  pool: Pool,
  options: { listen?: boolean; onJob: (queue: string) => void; onMissed: () => void; log: Logger },
): Promise<Listener | undefined> {
  const db = boss.getDb() as unknown as ListeningDb; // pg-boss types getDb() as its public Db, without config or listen
  const listen = options.listen ?? db.config?.useListenNotify === true;
  if (!listen || typeof db.listen !== 'function') return undefined;
  try {
    const { rows } = await pool.query<{ channel: string }>(notifyChannel);
    return await db.listen(rows[0]!.channel, options.onJob, options.onMissed);
  } catch (error) {
    // The database gone: the caller's start is tried again, LISTEN included; anything else would fail again, so poll.
    if (isConnectionError(error)) throw error;
    options.log.warn({ err: error }, 'could not LISTEN for new jobs; polling for them instead');
    return undefined;
  }
}
