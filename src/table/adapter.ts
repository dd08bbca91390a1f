import { randomUUID } from 'node:crypto';
import type { JobArguments, JobTypes, UntypedJobs } from '../jobs/define.js';

/** The four legacy states every legacy job table has, under whatever names it gives them. */
export type LegacyStatus = 'pending' | 'running' | 'completed' | 'failed';

/**
 * Where the columns cutover reads and writes live in the team's table. Optional columns the
 * table does not have are left out (`priority`: every job has priority 0; `maxAttempts`: the
 * registry's retry policy decides; `logs`, `durationInSeconds`: not recorded; `runAt`:
 * cutover's own `runAfter` column holds when a job is due). Bookkeeping the table lacks
 * (`updatedAt`, `startedAt`, `completedAt`, `error`, `attempts`, and `originalJobId` for
 * new-row retries) is added under the default name by `cutover init`.
 */
export interface LegacyColumns {
  id: string;
  status: string;
  attempts: string;
  createdAt: string;
  updatedAt: string;
  startedAt: string;
  completedAt: string;
  /** The legacy retry chain: a retry row points at the chain's first row. Unused with same-row retries. */
  originalJobId?: string;
  error: string;
  priority?: string;
  maxAttempts?: string;
  logs?: string;
  durationInSeconds?: string;
  /** When a job may run (`run_at`, `scheduledFor`): the claim waits for it, migrate and rollback carry it. */
  runAt?: string;
  /**
   * When a run failed (`lastFailedAttemptAt`, delayed_job's `failed_at`): stamped on every
   * failed run, or only on the failure for good (the adapter's `failedAtMeans`); never on a success.
   */
  failedAt?: string;
}

/** A legacy row read as a job: what the mapper sends to pg-boss. */
export interface LegacyJob {
  type: string;
  payload: unknown;
  priority?: number;
}

/** A row as node-postgres returns it: column name to value. */
export type LegacyRow = Record<string, unknown>;

/**
 * How cutover reads and writes a team's own legacy job table. Only `table`, `jobType`,
 * `toJob` and `toRow` are required; column and status names default to the generic table's.
 */
export interface LegacyAdapter<Types extends JobTypes = UntypedJobs> {
  /** @defaultValue 'public' */
  schema?: string;
  table: string;
  /** The column that holds the job type, or the one type every row of the table is. */
  jobType: string | { column: string };
  columns?: Partial<LegacyColumns>;
  /** The table's values for the four states. @defaultValue PENDING, RUNNING, COMPLETED, FAILED */
  status?: Partial<Record<LegacyStatus, string>>;
  /** The mapper: a row (all its columns) to the job it stands for. */
  toJob(row: LegacyRow): LegacyJob;
  /** The domain columns of a row for a new job (dual-write tracking rows, adopted orphans). */
  toRow(...[type, payload]: JobArguments<Types>): LegacyRow;
  /** Where a finished job's result goes: columns to set on its row. @defaultValue nothing is kept */
  onResult?(result: unknown, job: LegacyJob): LegacyRow;
  /**
   * Ids for rows cutover creates (retries, tracking rows). @defaultValue the id column's
   * sequence for serial and identity ids, else a random UUID
   */
  newId?(): string;
  /**
   * How the team's runner retries: a new row per attempt chained by `originalJobId`, or the
   * same row put back to pending with its attempts counted on. @defaultValue 'new-row'
   */
  retries?: 'new-row' | 'same-row';
  /**
   * Where a row's state lives: the status column, or, for a table that has none, the team's own
   * columns. `'derived'`: a row has succeeded when `columns.completedAt` is set, failed for good
   * when `columns.attempts` has reached `columns.maxAttempts`, and waits otherwise (until
   * `columns.runAt`). The states cutover needs beyond those (its own "running", a row pg-boss
   * owns) go to a status column of cutover's own, `cutoverStatus` unless `columns.status` names
   * another: `cutover init` adds it, backfilled from each row's derived state, and a trigger
   * derives it again whenever the team's own code writes a row, so the team's columns keep
   * their meaning and its runner needs no status. @defaultValue 'status'
   */
  state?: 'status' | 'derived';
  /**
   * What `columns.completedAt` means: the row finished, either way, or it succeeded (then a
   * failure never sets it). @defaultValue 'finished'; 'succeeded' with `state: 'derived'`
   */
  completedAtMeans?: 'finished' | 'succeeded';
  /**
   * What `columns.attempts` counts: every run (the one under way included, as cutover's own
   * runner counts), only the runs that failed (a success leaves it as it was), or the retries
   * made (`retried`: a run's success or failure for good leaves it as it was; a retry counts
   * one on). @defaultValue 'runs'
   */
  attemptsCount?: 'runs' | 'failed-runs' | 'retries';
  /**
   * What `columns.maxAttempts` limits: runs, or retries (`maxRetries`: a job runs up to
   * `maxRetries + 1` times). @defaultValue 'runs'
   */
  maxAttemptsMeans?: 'runs' | 'retries';
  /**
   * Which priority runs first: the highest number (cutover's generic table, pg-boss) or the
   * lowest (delayed_job, Que). cutover turns it round where it reads and writes the column, so
   * pg-boss and both claims run the table's most urgent job first. @defaultValue 'higher-first'
   */
  priorityOrder?: 'higher-first' | 'lower-first';
  /**
   * What `columns.failedAt` records: every failed run, or only the failure for good (a retry
   * leaves it empty; with `state: 'derived'` a row is then failed when it is set).
   * @defaultValue 'failed-run'
   */
  failedAtMeans?: 'failed-run' | 'failed-for-good';
  /**
   * What becomes of a row whose job succeeded: it stays, or it leaves the table as the team's
   * runner deletes it (delayed_job), kept in cutover's archive table (`cutover init` creates it)
   * so that reconcile and outcome comparison still see it. @defaultValue 'keep'
   */
  onSuccess?: 'keep' | 'archive';
  /**
   * What a success does to `columns.error`: empties it (cutover's generic table: a finished row
   * holds the error of its outcome), or leaves the last failed run's message there, as a runner
   * that writes only its success columns does (a team's "last error" column). Both engines and
   * `reconcile --fix` write it so. @defaultValue 'clear'
   */
  errorOnSuccess?: 'clear' | 'keep';
}

export interface CutoverConfig {
  /** The team's legacy table; without it, cutover's generic `Job` table. */
  legacy?: LegacyAdapter;
  /** The job registry module, relative to the config file. @defaultValue the demo registry */
  registry?: string;
  /**
   * The migrations `cutover db migrate` applies for an adopted table (where `cutover init`
   * writes), relative to the config file. @defaultValue 'prisma/migrations'
   */
  migrations?: string;
  /** A webhook told of rollout events (plan steps, aborts, kill switches, findings, dead letters). */
  notifications?: NotificationsConfig;
}

/** `notifications` in cutover.config: checked for shape here, the URL itself by src/notify/notify.ts. */
export interface NotificationsConfig {
  /** The receiver's URL. It is a secret (Slack's carries its token in the path): keep it out of the repository, e.g. `process.env.X`. */
  webhook?: string | undefined;
  /** The body: cutover's own JSON, or Slack's `{ text }`. @defaultValue 'slack' for hooks.slack.com, else 'json' */
  format?: 'json' | 'slack' | undefined;
  /** Dead letters of one type that make a notification (and every further multiple of it). @defaultValue 10 */
  dlqThreshold?: number | undefined;
}

/** Types the config file; it returns what it is given. */
export function defineConfig(config: CutoverConfig): CutoverConfig {
  return config;
}

/** The status column cutover adds for itself to a table with derived state (`state: 'derived'`). */
export const CUTOVER_STATUS_COLUMN = 'cutoverStatus';

export const DEFAULT_STATUS: Record<LegacyStatus, string> = { pending: 'PENDING', running: 'RUNNING', completed: 'COMPLETED', failed: 'FAILED' };

export const DEFAULT_COLUMNS: LegacyColumns = {
  id: 'id',
  status: 'status',
  attempts: 'attempts',
  createdAt: 'createdAt',
  updatedAt: 'updatedAt',
  startedAt: 'startedAt',
  completedAt: 'completedAt',
  originalJobId: 'originalJobId',
  error: 'error',
};

/** cutover's generic table (migration 0001): a `type` and a `payload` column, results as JSON. */
export const genericAdapter: LegacyAdapter = {
  table: 'Job',
  jobType: { column: 'type' },
  columns: { priority: 'priority', maxAttempts: 'maxAttempts', logs: 'logs', durationInSeconds: 'durationInSeconds' },
  toJob: (row) => ({ type: String(row.type), payload: row.payload, priority: Number(row.priority ?? 0) }),
  toRow: (type, payload) => ({ type, payload }),
  onResult: (result) => ({ result: result ?? null }),
  newId: randomUUID,
};
