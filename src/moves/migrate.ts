import pLimit from 'p-limit';
import { withTransaction } from '../db/transaction.js';
import type { JobRegistry } from '../jobs/registry.js';
import { insertCarried, type CarriedJob } from '../pgboss/carry.js';
import { ensureQueues } from '../pgboss/queues.js';
import { audit } from '../state/audit.js';
import { killedTypes } from '../state/kill-switch.js';
import { DEFAULT_FLAG } from '../state/flags.js';
import { pgbossPriority } from '../table/priority.js';
import { pgbossIdFor } from '../table/ids.js';
import { tableOf, type OpsContext } from '../table/context.js';
import { lockJobTypes } from './locks.js';
import { maxAttemptsOf, rowId, toJob, type LegacyTable } from '../table/table.js';
import { countBacklog, flipToPgboss, lockBacklogBatch, quarantine, readBacklogPage, type BacklogFilter, type BacklogRecord } from './migrate.sql.js';
import { messageOf } from '../support/errors.js';

/** A backlog row read as a job by the adapter: the mapper's first half, the adapter's toJob. */
interface BacklogJob {
  id: string;
  type: string;
  payload: unknown;
  priority: number;
  attempts: number;
  maxAttempts: number;
  ageSeconds: number;
  /** When the row is due, if not yet: a scheduled job or a backed-off retry keeps its time on pg-boss. */
  runAfter: Date | null;
}

/** An adapter that cannot read a row stops the run (the error goes up, the batch rolls back). */
function readRow(table: LegacyTable, registry: JobRegistry, record: BacklogRecord): BacklogJob {
  const job = toJob(table, record);
  return {
    id: rowId(table, record),
    type: job.type,
    payload: job.payload,
    priority: job.priority ?? 0,
    attempts: Number(record[table.names.attempts] ?? 0),
    maxAttempts: maxAttemptsOf(table, record, registry, job.type),
    ageSeconds: record.cutover_age,
    runAfter: record.cutover_run_after,
  };
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

/** One type's share of a batch: the legacy ids and the pg-boss jobs they become, index for index. */
interface TypeGroup {
  rowIds: string[];
  jobs: CarriedJob[];
}

interface Mapped {
  /** Rows read, whether they map or not. */
  rows: number;
  byType: Map<string, TypeGroup>;
  rejects: QuarantinedJob[];
}

/**
 * The mapper: legacy rows to pg-boss jobs, or the reason a row can't be one (its payload would
 * never run: unknown type, invalid or unstorable payload). Built straight into what pg-boss is
 * given, grouped by type.
 */
async function mapRows(table: LegacyTable, registry: JobRegistry, records: readonly BacklogRecord[]): Promise<Mapped> {
  const mapped: Mapped = { rows: records.length, byType: new Map(), rejects: [] };
  for (const record of records) {
    const row = readRow(table, registry, record);
    try {
      await registry.validate(row.type, row.payload);
    } catch (error) {
      mapped.rejects.push({ jobId: row.id, jobType: row.type, reason: messageOf(error) });
      continue;
    }
    let group = mapped.byType.get(row.type);
    if (!group) mapped.byType.set(row.type, (group = { rowIds: [], jobs: [] }));
    group.rowIds.push(row.id);
    group.jobs.push({
      id: pgbossIdFor(row.id),
      data: row.payload as object,
      priority: pgbossPriority(row.priority, row.ageSeconds),
      attempts: row.attempts,
      maxAttempts: row.maxAttempts,
      startAfter: row.runAfter,
    });
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
  // The backlog at the start is only ever reported as progress's total: counting it is a scan
  // of the whole backlog, so it is skipped when nobody asks.
  const total = options.onProgress ? await countBacklog(pool, tableOf(options), filter) : 0;
  const lockTypes = filter.types ?? registry.names();

  if (options.dryRun) {
    await dryRun(options, filter, batchSize, summary, total);
    summary.seconds = round((performance.now() - started) / 1000);
    return summary;
  }

  const locks = await lockJobTypes(options.databaseUrl, lockTypes, 'migrate', { log: options.log });
  try {
    await ensureQueues(options.boss, registry, log, (filter.types ?? registry.names()).filter((type) => registry.get(type)));
    let budget = options.limit ?? Number.POSITIVE_INFINITY;
    const limit = pLimit(options.concurrency ?? 1);
    const lane = async () => {
      for (;;) {
        if (budget <= 0 || summary.stoppedBy) return;
        // A rollback sets the kill switch first and then waits for this run's locks: stop at
        // the next batch boundary so it can move everything back.
        const killed = await killedTypes(pool, lockTypes);
        if (killed.length) {
          summary.stoppedBy = `kill switch on for ${killed.join(', ')}`;
          log.warn({ killed }, 'migrate stopped: a kill switch is on');
          return;
        }
        // Sized only after the await, in the same tick as it is taken from the budget: sized
        // before, two lanes could each size a batch from the same rest and overshoot --limit.
        const size = Math.min(batchSize, budget);
        if (size <= 0 || summary.stoppedBy) return;
        budget -= size;
        const selected = await moveBatch(options, filter, size, summary);
        budget += size - selected;
        if (selected === 0) return;
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
    jobType: filter.types?.join(',') ?? DEFAULT_FLAG,
    after: { moved: summary.moved, quarantined: summary.quarantined, byType: summary.byType, stoppedBy: summary.stoppedBy },
  });
  log.info({ moved: summary.moved, quarantined: summary.quarantined, seconds: summary.seconds }, 'migrate finished');
  return summary;
}

/** One batch in one transaction; returns the rows it selected (moved or quarantined). */
async function moveBatch(options: MigrateOptions, filter: BacklogFilter, size: number, summary: MigrateSummary): Promise<number> {
  const table = tableOf(options);
  const batch = await withTransaction(options.pool, async (client) => {
    const { rows, byType, rejects } = await mapRows(table, options.registry, await lockBacklogBatch(client, table, filter, size));
    const landedIds: string[] = [];
    const landedPgbossIds: string[] = [];
    const landedByType = new Map<string, number>();
    for (const [type, { rowIds, jobs }] of byType) {
      const inserted = await insertCarried(options.boss, client, type, jobs);
      const before = landedIds.length;
      for (let i = 0; i < jobs.length; i++) {
        const pgbossId = jobs[i]!.id;
        // pg-boss skips an id it already holds; such a row must not be flipped, or it would never run.
        if (inserted.has(pgbossId)) {
          landedIds.push(rowIds[i]!);
          landedPgbossIds.push(pgbossId);
        } else {
          rejects.push({ jobId: rowIds[i]!, jobType: type, reason: `pg-boss already has a job with id ${pgbossId}` });
        }
      }
      if (landedIds.length > before) landedByType.set(type, landedIds.length - before);
    }
    await flipToPgboss(client, table, landedIds, landedPgbossIds);
    await quarantine(client, rejects);
    return { rows, moved: landedIds.length, landedByType, rejects };
  });
  // Counted only once committed: a batch that rolled back moved nothing.
  if (batch.rows) summary.batches += 1;
  summary.moved += batch.moved;
  summary.quarantined += batch.rejects.length;
  for (const [type, count] of batch.landedByType) summary.byType[type] = (summary.byType[type] ?? 0) + count;
  summary.quarantine.push(...batch.rejects.slice(0, Math.max(0, MAX_REPORTED - summary.quarantine.length)));
  return batch.rows;
}

async function dryRun(options: MigrateOptions, filter: BacklogFilter, batchSize: number, summary: MigrateSummary, total: number): Promise<void> {
  const table = tableOf(options);
  let after: string | null = null;
  let budget = options.limit ?? Number.POSITIVE_INFINITY;
  for (;;) {
    const page = await readBacklogPage(options.pool, table, filter, after, batchSize);
    if (!page.length) break;
    after = rowId(table, page[page.length - 1]!);
    for (const record of page) {
      const row = readRow(table, options.registry, record);
      try {
        await options.registry.validate(row.type, row.payload);
      } catch (error) {
        summary.quarantined += 1;
        if (summary.quarantine.length < MAX_REPORTED) summary.quarantine.push({ jobId: row.id, jobType: row.type, reason: messageOf(error) });
        continue;
      }
      if (budget <= 0) {
        summary.skipped += 1;
        continue;
      }
      budget -= 1;
      summary.moved += 1;
      summary.byType[row.type] = (summary.byType[row.type] ?? 0) + 1;
    }
    summary.batches += 1;
    options.onProgress?.(summary.moved + summary.quarantined + summary.skipped, total);
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
