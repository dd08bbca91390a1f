import pLimit from 'p-limit';
import { withTransaction } from '../db/transaction.js';
import type { JobRegistry } from '../jobs/registry.js';
import { insertCarried } from '../pgboss/carry.js';
import { ensureQueues } from '../pgboss/queues.js';
import { audit } from '../db/audit.js';
import { killedTypes } from '../db/kill-switch.js';
import { pgbossPriority } from '../rollout/priority.js';
import { pgbossIdFor } from '../table/ids.js';
import { tableOf, type OpsContext } from './context.js';
import { lockJobTypes } from './locks.js';
import { maxAttemptsOf, rowId, toJob, type LegacyTable } from '../table/table.js';
import { countBacklog, flipToPgboss, lockBacklogBatch, quarantine, readBacklogPage, type BacklogFilter, type BacklogRecord } from './migrate.sql.js';
import { messageOf } from '../errors.js';

/** A backlog row read as a job by the adapter. */
interface BacklogRow {
  id: string;
  type: string;
  payload: unknown;
  priority: number;
  attempts: number;
  maxAttempts: number;
  ageSeconds: number;
  /** When the row is due: a scheduled job or a backed-off retry keeps its time on pg-boss. */
  runAfter: Date | null;
}

/** The mapper's first half, the adapter's toJob: an adapter that cannot read a row stops the run. */
function readRows(table: LegacyTable, registry: JobRegistry, records: readonly BacklogRecord[]): BacklogRow[] {
  return records.map((record) => {
    const job = toJob(table, record);
    return {
      id: rowId(table, record),
      type: job.type,
      payload: job.payload,
      priority: job.priority ?? 0,
      attempts: Number(record[table.names.attempts] ?? 0),
      maxAttempts: maxAttemptsOf(table, record, registry, job.type),
      ageSeconds: record.cutover_age,
      runAfter: (record[table.names.runAt ?? 'runAfter'] as Date | null | undefined) ?? null,
    };
  });
}

export interface MigrateOptions extends OpsContext {
  types?: readonly string[];
  olderThanSeconds?: number;
  /** At most this many rows moved in this run. */
  limit?: number;
  /** @defaultValue 500 */
  batchSize?: number;
  /** Batches in flight at once. @defaultValue 1 */
  concurrency?: number;
  dryRun?: boolean;
  /** Called after each batch with the rows handled so far and the backlog at the start. */
  onProgress?: (done: number, total: number) => void;
}

export interface QuarantinedJob {
  jobId: string;
  jobType: string;
  reason: string;
}

export interface MigrateSummary {
  dryRun: boolean;
  moved: number;
  quarantined: number;
  /** Rows left for a later run because of --limit. */
  skipped: number;
  batches: number;
  seconds: number;
  byType: Record<string, number>;
  quarantine: QuarantinedJob[];
  /** Set when the run stopped early because a kill switch went on: the way back comes first. */
  stoppedBy: string | null;
}

const MAX_REPORTED = 100;

interface Mapped {
  moves: { row: BacklogRow; pgbossId: string }[];
  rejects: QuarantinedJob[];
}

/** The mapper: a legacy row to a pg-boss job, or the reason it can't be one. */
async function mapRows(registry: JobRegistry, rows: readonly BacklogRow[]): Promise<Mapped> {
  const mapped: Mapped = { moves: [], rejects: [] };
  for (const row of rows) {
    try {
      await registry.validate(row.type, row.payload);
      mapped.moves.push({ row, pgbossId: pgbossIdFor(row.id) });
    } catch (error) {
      mapped.rejects.push({ jobId: row.id, jobType: row.type, reason: messageOf(error) });
    }
  }
  return mapped;
}

/**
 * Moves the legacy PENDING backlog to pg-boss. Each batch is one transaction: rows locked with
 * SKIP LOCKED, pg-boss jobs inserted with the same ids, rows flipped to PGBOSS; a crash leaves
 * a batch wholly moved or wholly not. Rows that can't be mapped go to quarantine and stay
 * legacy. Safe to run twice or concurrently: no row is ever moved twice.
 */
export async function migrateBacklog(options: MigrateOptions): Promise<MigrateSummary> {
  const started = performance.now();
  const { pool, registry, log } = options;
  const filter: BacklogFilter = { types: options.types?.length ? [...options.types] : null, olderThanSeconds: options.olderThanSeconds ?? null };
  const batchSize = options.batchSize ?? 500;
  const summary: MigrateSummary = { dryRun: options.dryRun ?? false, moved: 0, quarantined: 0, skipped: 0, batches: 0, seconds: 0, byType: {}, quarantine: [], stoppedBy: null };
  const total = await countBacklog(pool, tableOf(options), filter);
  const lockTypes = filter.types ?? registry.names();

  if (options.dryRun) {
    await dryRun(options, filter, batchSize, summary, total);
    summary.seconds = round((performance.now() - started) / 1000);
    return summary;
  }

  const locks = await lockJobTypes(options.databaseUrl, lockTypes, 'migrate');
  try {
    await ensureQueues(options.boss, registry, log, (filter.types ?? registry.names()).filter((type) => registry.get(type)));
    let budget = options.limit ?? Number.POSITIVE_INFINITY;
    const limit = pLimit(options.concurrency ?? 1);
    const lane = async () => {
      for (;;) {
        const size = Math.min(batchSize, budget);
        if (size <= 0 || summary.stoppedBy) return;
        // A rollback sets the kill switch first and then waits for this run's locks: stop at
        // the next batch boundary so it can move everything back.
        const killed = await killedTypes(pool, lockTypes);
        if (killed.length) {
          summary.stoppedBy = `kill switch on for ${killed.join(', ')}`;
          log.warn({ killed }, 'migrate stopped: a kill switch is on');
          return;
        }
        budget -= size;
        const handled = await moveBatch(options, filter, size, summary);
        budget += size - handled.handled;
        if (handled.selected === 0) return;
        options.onProgress?.(summary.moved + summary.quarantined, total);
      }
    };
    await Promise.all(Array.from({ length: options.concurrency ?? 1 }, () => limit(lane)));
    summary.skipped = options.limit !== undefined ? await countBacklog(pool, tableOf(options), filter) : 0;
  } finally {
    await locks.release();
  }
  summary.seconds = round((performance.now() - started) / 1000);
  await audit(pool, {
    actor: options.actor,
    action: 'migrate',
    jobType: filter.types?.join(',') ?? '*',
    after: { moved: summary.moved, quarantined: summary.quarantined, byType: summary.byType, stoppedBy: summary.stoppedBy },
  });
  log.info({ moved: summary.moved, quarantined: summary.quarantined, seconds: summary.seconds }, 'migrate finished');
  return summary;
}

async function moveBatch(options: MigrateOptions, filter: BacklogFilter, size: number, summary: MigrateSummary): Promise<{ selected: number; handled: number }> {
  const batch = await withTransaction(options.pool, async (client) => {
    const rows = readRows(tableOf(options), options.registry, await lockBacklogBatch(client, tableOf(options), filter, size));
    const { moves, rejects } = await mapRows(options.registry, rows);
    const byType = new Map<string, typeof moves>();
    for (const move of moves) {
      const group = byType.get(move.row.type);
      if (group) group.push(move);
      else byType.set(move.row.type, [move]);
    }
    const landed: typeof moves = [];
    for (const [type, group] of byType) {
      const inserted = await insertCarried(
        options.boss,
        client,
        type,
        group.map(({ row, pgbossId }) => ({
          id: pgbossId,
          data: row.payload as object,
          priority: pgbossPriority(row.priority, row.ageSeconds),
          attempts: row.attempts,
          maxAttempts: row.maxAttempts,
          startAfter: row.runAfter,
        })),
      );
      // pg-boss skips an id it already holds; such a row must not be flipped, or it would never run.
      for (const move of group) {
        if (inserted.has(move.pgbossId)) landed.push(move);
        else rejects.push({ jobId: move.row.id, jobType: type, reason: `pg-boss already has a job with id ${move.pgbossId}` });
      }
    }
    await flipToPgboss(client, tableOf(options), landed.map(({ row, pgbossId }) => ({ id: row.id, pgbossId })));
    await quarantine(client, rejects);
    return { rows, landed, rejects };
  });
  // Counted only once committed: a batch that rolled back moved nothing.
  if (batch.rows.length) summary.batches += 1;
  summary.moved += batch.landed.length;
  summary.quarantined += batch.rejects.length;
  for (const { row } of batch.landed) summary.byType[row.type] = (summary.byType[row.type] ?? 0) + 1;
  summary.quarantine.push(...batch.rejects.slice(0, MAX_REPORTED - summary.quarantine.length));
  return { selected: batch.rows.length, handled: batch.rows.length };
}

async function dryRun(options: MigrateOptions, filter: BacklogFilter, batchSize: number, summary: MigrateSummary, total: number): Promise<void> {
  let after: string | null = null;
  let budget = options.limit ?? Number.POSITIVE_INFINITY;
  for (;;) {
    const page = readRows(tableOf(options), options.registry, await readBacklogPage(options.pool, tableOf(options), filter, after, batchSize));
    if (!page.length) break;
    after = page[page.length - 1]!.id;
    const { moves, rejects } = await mapRows(options.registry, page);
    const take = moves.slice(0, Math.max(0, Math.min(moves.length, budget)));
    budget -= take.length;
    summary.moved += take.length;
    summary.skipped += moves.length - take.length;
    summary.quarantined += rejects.length;
    for (const { row } of take) summary.byType[row.type] = (summary.byType[row.type] ?? 0) + 1;
    summary.quarantine.push(...rejects.slice(0, MAX_REPORTED - summary.quarantine.length));
    summary.batches += 1;
    options.onProgress?.(summary.moved + summary.quarantined + summary.skipped, total);
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
