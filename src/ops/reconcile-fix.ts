import type { PgBoss } from 'pg-boss';
import type { Pool } from '../db/pool.js';
import { withTransaction } from '../db/transaction.js';
import { clientDb, PGBOSS_SCHEMA } from '../pgboss/boss.js';
import { audit, readFlags } from '../rollout/flags.js';
import { pgbossPriority } from '../rollout/priority.js';
import { findingQueries } from './reconcile.sql.js';
import { stateMappingSql } from './states.js';

/** What `--fix` may repair: lost, orphan and drift. Stuck and double need a person. */
export interface FixCounts {
  lost: number;
  orphan: number;
  drift: number;
}

export interface FixContext {
  pool: Pool;
  boss: PgBoss;
  actor: string;
  types: readonly string[];
  graceSeconds: number;
}

const PAGE = 500;

/**
 * Re-sends a lost job to pg-boss with the same id, or, when the type's kill switch is on,
 * hands it back to legacy. The row is re-checked under lock: a job that found its way back
 * meanwhile is left alone.
 */
async function fixLost(context: FixContext): Promise<number> {
  const flags = await readFlags(context.pool);
  const killed = (type: string) => Boolean(flags.get(type)?.killSwitch || flags.get('*')?.killSwitch);
  let fixed = 0;
  for (;;) {
    const { rows } = await context.pool.query<{ id: string }>(`${findingQueries.lost} LIMIT ${PAGE}`, [context.types, context.graceSeconds]);
    let progressed = 0;
    for (const { id } of rows) {
      progressed += await withTransaction(context.pool, async (client) => {
        const { rows: locked } = await client.query<{ id: string; type: string; payload: object; priority: number; pgbossJobId: string; attempts: number; maxAttempts: number; status: string }>(
          `SELECT id, type, payload, priority, "pgbossJobId", attempts, "maxAttempts", status FROM "Job"
            WHERE id = $1 AND engine = 'PGBOSS' AND status IN ('PENDING', 'RUNNING') FOR UPDATE`,
          [id],
        );
        const row = locked[0];
        if (!row) return 0;
        const { rows: present } = await client.query(`SELECT 1 FROM ${PGBOSS_SCHEMA}.job WHERE name = $1 AND id = $2`, [row.type, row.pgbossJobId]);
        if (present.length) return 0;
        if (killed(row.type)) {
          await client.query(
            `UPDATE "Job" SET engine = 'LEGACY', "routeReason" = 'rolledback', status = 'PENDING', "pgbossJobId" = NULL, "workerId" = NULL,
                    "runAfter" = now(), "updatedAt" = now() WHERE id = $1`,
            [id],
          );
        } else {
          await context.boss.insert(
            row.type,
            [{ id: row.pgbossJobId, data: row.payload, priority: pgbossPriority(row.priority), retryLimit: Math.max(0, row.maxAttempts - row.attempts - 1) }],
            { db: clientDb(client) },
          );
          await client.query(`UPDATE "Job" SET status = 'PENDING', "workerId" = NULL, "updatedAt" = now() WHERE id = $1`, [id]);
        }
        await audit(client, {
          actor: context.actor,
          action: 'reconcile.fix.lost',
          jobType: row.type,
          before: { id, engine: 'PGBOSS', status: row.status },
          after: killed(row.type) ? { engine: 'LEGACY', status: 'PENDING' } : { engine: 'PGBOSS', status: 'PENDING', resent: row.pgbossJobId },
        });
        return 1;
      });
    }
    fixed += progressed;
    if (rows.length < PAGE || progressed === 0) return fixed;
  }
}

/** Adopts a pg-boss job that has no row: the row is created from the job, in its mapped state. */
async function fixOrphans(context: FixContext): Promise<number> {
  let fixed = 0;
  for (;;) {
    const { rows } = await context.pool.query<{ id: string; type: string }>(`${findingQueries.orphan} LIMIT ${PAGE}`, [context.types, context.graceSeconds]);
    let progressed = 0;
    for (const { id, type } of rows) {
      progressed += await withTransaction(context.pool, async (client) => {
        const { rowCount } = await client.query(
          `INSERT INTO "Job" (id, type, payload, status, priority, attempts, "maxAttempts", engine, "pgbossJobId", "routeReason",
                              result, error, "createdAt", "updatedAt", "startedAt", "completedAt", "runAfter")
           SELECT b.id, b.name, COALESCE(b.data, '{}'::jsonb), map.row_status::"JobStatus", b.priority / 1000, b.retry_count + CASE WHEN b.state IN ('created', 'retry') THEN 0 ELSE 1 END,
                  b.retry_limit + 1, 'PGBOSS', b.id, 'adopted',
                  CASE WHEN b.state = 'completed' THEN b.output END,
                  CASE WHEN b.state IN ('failed', 'cancelled') THEN COALESCE(b.output ->> 'message', b.state::text) END,
                  b.created_on AT TIME ZONE 'UTC', now(), b.started_on AT TIME ZONE 'UTC', b.completed_on AT TIME ZONE 'UTC', now()
             FROM ${PGBOSS_SCHEMA}.job b JOIN ${stateMappingSql()} ON map.state = b.state::text
            WHERE b.name = $1 AND b.id = $2 AND NOT EXISTS (SELECT 1 FROM "Job" j WHERE j."pgbossJobId" = b.id OR j.id = b.id)`,
          [type, id],
        );
        if (!rowCount) return 0;
        await audit(client, { actor: context.actor, action: 'reconcile.fix.orphan', jobType: type, before: null, after: { id, adopted: true } });
        return 1;
      });
    }
    fixed += progressed;
    if (rows.length < PAGE || progressed === 0) return fixed;
  }
}

/**
 * Copies pg-boss's state to a drifted row when that is safe: pg-boss's final states, and a
 * queued pg-boss job whose row still says RUNNING (its worker died). A row that says COMPLETED
 * while pg-boss will still run the job is reported, never "fixed".
 */
async function fixDrift(context: FixContext): Promise<number> {
  const fixable = `
    SELECT j.id, j.type, j.status::text AS "rowStatus", b.state::text AS state, map.row_status AS "target", b.output, b.retry_count AS "retryCount"
      FROM "Job" j
      JOIN ${PGBOSS_SCHEMA}.job b ON b.name = j.type AND b.id = j."pgbossJobId"
      JOIN ${stateMappingSql()} ON map.state = b.state::text
     WHERE j.id = ANY($1::uuid[]) AND j.status::text <> map.row_status
       AND (map.final OR (b.state IN ('created', 'retry') AND j.status = 'RUNNING'))
     FOR UPDATE OF j`;
  let fixed = 0;
  for (;;) {
    const { rows: found } = await context.pool.query<{ id: string }>(`${findingQueries.drift} LIMIT ${PAGE}`, [context.types, context.graceSeconds]);
    let progressed = 0;
    for (const { id } of found) {
      progressed += await withTransaction(context.pool, async (client) => {
        const { rows } = await client.query<{ id: string; type: string; rowStatus: string; state: string; target: string; output: { message?: string } | null; retryCount: number }>(fixable, [[id]]);
        const row = rows[0];
        if (!row) return 0;
        const finalState = row.state !== 'created' && row.state !== 'retry';
        await client.query(
          `UPDATE "Job" SET status = $2::"JobStatus", attempts = $3, "updatedAt" = now(), "workerId" = NULL,
                  result = CASE WHEN $2 = 'COMPLETED' THEN $4::jsonb ELSE result END,
                  error = CASE WHEN $2 = 'FAILED' THEN $5 ELSE error END,
                  "completedAt" = CASE WHEN $6 THEN COALESCE("completedAt", now() AT TIME ZONE 'UTC') ELSE NULL END
            WHERE id = $1`,
          [row.id, row.target, row.retryCount + (finalState ? 1 : 0), JSON.stringify(row.output ?? null), row.output?.message ?? `pg-boss ${row.state}`, finalState],
        );
        await audit(client, { actor: context.actor, action: 'reconcile.fix.drift', jobType: row.type, before: { id, status: row.rowStatus }, after: { status: row.target, pgboss: row.state } });
        return 1;
      });
    }
    fixed += progressed;
    if (found.length < PAGE || progressed === 0) return fixed;
  }
}

export async function fixFindings(context: FixContext): Promise<FixCounts> {
  return { lost: await fixLost(context), orphan: await fixOrphans(context), drift: await fixDrift(context) };
}
