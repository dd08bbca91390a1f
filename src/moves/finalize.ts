import { audit } from '../state/audit.js';
import type { Pool } from '../db/pool.js';
import { withTransaction } from '../db/transaction.js';
import { CheckFailedError } from '../support/errors.js';
import type { JobRegistry } from '../jobs/registry.js';
import { routeDecision } from '../rollout/decide.js';
import { announceFlagChange, changeFlag, readFlags } from '../state/flags.js';
import type { LegacyTable } from '../table/table.js';
import { drainReport, openRows } from '../checks/drain-report.js';

export interface FinalizeOptions {
  pool: Pool;
  registry: JobRegistry;
  table: LegacyTable;
  actor: string;
  jobType: string;
  /** Whether new jobs of the type still get a tracking row in the legacy table. */
  tracking: boolean;
  reason?: string | null;
}

export interface FinalizeResult {
  jobType: string;
  tracking: boolean;
  /** False when the type was already finalized with the same tracking (nothing written). */
  changed: boolean;
}

/**
 * The end state of a type's rollout: routing pinned to pg-boss (no percentage lookup; lowering
 * it later needs --unfinalize), and the team's choice of whether tracking rows go on. Refused
 * unless the type routes 100 % to pg-boss with no kill switch, and the legacy side holds none
 * of its rows (drain-report clean): a finalized type must need nothing of the legacy runner.
 * The flag at 100 % and the finalization commit together, audited and announced.
 */
export async function finalize(options: FinalizeOptions): Promise<FinalizeResult> {
  const { pool, jobType, tracking } = options;
  options.registry.require(jobType);
  const { route, reason } = routeDecision(jobType, await readFlags(pool), {});
  const killed = reason === 'killswitch';
  if (killed || route.percent < 100) {
    throw new CheckFailedError(
      `${jobType} routes ${route.percent}% to pg-boss (${route.decidedBy}): finalize needs 100 % and no kill switch (cutover rollout set 100 --type ${jobType}); nothing changed`,
    );
  }
  const drain = await drainReport(pool, options.table, { types: [jobType] });
  const open = drain.types.reduce((sum, counts) => sum + openRows(counts), 0);
  if (open) throw new CheckFailedError(`${open} legacy row(s) of ${jobType} are not final yet: see cutover drain-report --type ${jobType}; nothing changed`);

  return withTransaction(pool, async (client) => {
    const { rows } = await client.query<{ tracking: boolean }>(`SELECT tracking FROM "RolloutFinal" WHERE "jobType" = $1 FOR UPDATE`, [jobType]);
    const before = rows[0];
    if (before?.tracking === tracking) return { jobType, tracking, changed: false };
    // The type's own flag at 100 % (a `*` flag at 100 % could later be lowered for the others).
    await changeFlag(pool, { jobType, basisPoints: 10_000 }, { actor: options.actor, action: 'flag.set', reason: `finalize ${jobType}` }, client);
    await client.query(
      `INSERT INTO "RolloutFinal" ("jobType", tracking, "finalizedBy") VALUES ($1, $2, $3)
       ON CONFLICT ("jobType") DO UPDATE SET tracking = EXCLUDED.tracking, "finalizedAt" = now(), "finalizedBy" = EXCLUDED."finalizedBy"`,
      [jobType, tracking, options.actor],
    );
    await audit(client, {
      actor: options.actor,
      action: 'rollout.finalize',
      jobType,
      before: before ? { finalized: true, tracking: before.tracking } : { finalized: false },
      after: { finalized: true, tracking },
      reason: options.reason ?? null,
    });
    await announceFlagChange(client, jobType);
    return { jobType, tracking, changed: true };
  });
}
