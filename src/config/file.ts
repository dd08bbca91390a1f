import { existsSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { UsageError, messageOf } from '../support/errors.js';
import type { CutoverConfig, LegacyAdapter, NotificationsConfig } from '../table/adapter.js';
import { importUserModule } from '../support/modules.js';
import { errorCode } from '../support/pg-errors.js';

export type { NotificationsConfig } from '../table/adapter.js';

/** Looked for in the working directory, in this order, when --config is not given. */
export const CONFIG_FILE_NAMES = ['cutover.config.ts', 'cutover.config.mjs', 'cutover.config.js'] as const;

/** The config file, resolved: paths are absolute, the adapter is checked for shape. */
export interface ProjectConfig {
  /** The file it came from; undefined when there is none (the generic table, the demo jobs). */
  file: string | undefined;
  legacy: LegacyAdapter | undefined;
  /** The job registry module, absolute. */
  registry: string | undefined;
  /** Where `cutover init` writes and what `cutover db migrate` applies for an adopted table. */
  migrationsDir: string;
  /** The webhook the delivery loop tells of rollout events (the CUTOVER_WEBHOOK_* variables win). */
  notifications?: NotificationsConfig | undefined;
}

const identifier = z.string().min(1, 'must not be empty').max(63, 'is longer than the 63 characters Postgres allows');
const fn = (name: string) => z.custom<(...args: never[]) => unknown>((value) => typeof value === 'function', `must be a function (${name})`);

const adapterSchema = z.strictObject({
  schema: identifier.optional(),
  table: identifier,
  jobType: z.union([z.string().min(1, 'must not be empty'), z.strictObject({ column: identifier })], {
    error: "must be the job type every row is (a string) or { column: '<the type column>' }",
  }),
  columns: z
    .strictObject({
      id: identifier,
      status: identifier,
      attempts: identifier,
      createdAt: identifier,
      updatedAt: identifier,
      startedAt: identifier,
      completedAt: identifier,
      originalJobId: identifier,
      error: identifier,
      priority: identifier,
      maxAttempts: identifier,
      logs: identifier,
      durationInSeconds: identifier,
      runAt: identifier,
      failedAt: identifier,
    })
    .partial()
    .optional(),
  status: z.strictObject({ pending: z.string().min(1), running: z.string().min(1), completed: z.string().min(1), failed: z.string().min(1) }).partial().optional(),
  toJob: fn('row => ({ type, payload, priority? })'),
  toRow: fn('(type, payload) => columns'),
  onResult: fn('(result, job) => columns').optional(),
  newId: fn('() => string').optional(),
  retries: z.enum(['new-row', 'same-row'], { error: "must be 'new-row' or 'same-row'" }).optional(),
  state: z.enum(['status', 'derived'], { error: "must be 'status' (a status column) or 'derived' (no status column: state from completedAt, attempts and maxAttempts)" }).optional(),
  completedAtMeans: z.enum(['finished', 'succeeded'], { error: "must be 'finished' or 'succeeded'" }).optional(),
  attemptsCount: z.enum(['runs', 'failed-runs', 'retries'], { error: "must be 'runs', 'failed-runs' or 'retries'" }).optional(),
  maxAttemptsMeans: z.enum(['runs', 'retries'], { error: "must be 'runs' or 'retries'" }).optional(),
  priorityOrder: z.enum(['higher-first', 'lower-first'], { error: "must be 'higher-first' or 'lower-first'" }).optional(),
  failedAtMeans: z.enum(['failed-run', 'failed-for-good'], { error: "must be 'failed-run' or 'failed-for-good'" }).optional(),
  onSuccess: z.enum(['keep', 'archive'], { error: "must be 'keep' or 'archive'" }).optional(),
  errorOnSuccess: z.enum(['clear', 'keep'], { error: "must be 'clear' (a success empties the error column) or 'keep' (it keeps the last failure's message)" }).optional(),
});

const configSchema = z.strictObject({
  legacy: adapterSchema.optional(),
  registry: z.string().min(1).optional(),
  migrations: z.string().min(1).optional(),
  notifications: z
    .strictObject({
      // Never echoed: a rejected value may be the secret itself.
      webhook: z.string({ error: 'must be a URL (a string)' }).optional(),
      format: z.enum(['json', 'slack'], { error: "must be 'json' or 'slack'" }).optional(),
      dlqThreshold: z.number({ error: 'must be a whole number from 1' }).int('must be a whole number from 1').min(1, 'must be a whole number from 1').optional(),
    })
    .optional(),
});

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.map(String).join('.');
  if (issue.code === 'unrecognized_keys') return `${path ? `${path}: ` : ''}unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`;
  return `${path || '(config)'}: ${issue.message}`;
}

/** How to install a package a config imports; cutover itself is not on the npm registry (README, Install). */
function installAdvice(name: string, dir: string): string {
  if (name === 'cutover') return `run \`npm install /path/to/cutover-<version>.tgz\` in ${dir} (cutover is not on the npm registry: \`npm pack\` in a cutover checkout makes the tarball)`;
  return `run \`npm install ${name}\` in ${dir}`;
}

/**
 * The npm package an import could not find (`cutover` for `cutover/jobs`), from Node's own error
 * (ERR_MODULE_NOT_FOUND) or jiti's (MODULE_NOT_FOUND, for a TypeScript config). A missing
 * relative file is not a package: that error is shown as it is.
 */
function missingPackage(error: unknown): string | undefined {
  const code = errorCode(error);
  if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') return undefined;
  const specifier = /Cannot find (?:package|module) '([^']+)'/.exec(messageOf(error))?.[1];
  if (!specifier || /^(\.|\/|[A-Za-z]:\\|file:|node:)/.test(specifier)) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/**
 * Loads `--config` (or the first of CONFIG_FILE_NAMES in `cwd`). No file: the generic table
 * and demo registry. A file that does not load or does not validate is a UsageError naming
 * the file and the field, before anything touches the database.
 */
export async function loadConfigFile(path: string | undefined, cwd = process.cwd()): Promise<ProjectConfig> {
  const file = path !== undefined ? resolve(cwd, path) : CONFIG_FILE_NAMES.map((name) => resolve(cwd, name)).find((candidate) => existsSync(candidate));
  if (file === undefined) return { file: undefined, legacy: undefined, registry: undefined, migrationsDir: resolve(cwd, 'prisma/migrations'), notifications: undefined };
  if (!existsSync(file)) throw new UsageError(`--config ${path}: no such file`);
  let loaded: Record<string, unknown>;
  try {
    loaded = await importUserModule(file);
  } catch (error) {
    const missing = missingPackage(error);
    if (missing) {
      // Node resolves a config's imports from the config's own folder upwards, never from where
      // the cutover CLI itself is installed: a config copied out of the repository finds nothing.
      throw new UsageError(
        `cannot load ${file}: it imports '${missing}', which is not installed where the config is: ${installAdvice(missing, dirname(file))}`,
        { cause: error },
      );
    }
    throw new UsageError(`cannot load ${file}: ${messageOf(error)}`, { cause: error });
  }
  const parsed = configSchema.safeParse(loaded.default ?? loaded.config);
  if (!parsed.success) throw new UsageError(`${file}: ${parsed.error.issues.map(describeIssue).join('; ')}`);
  // The schema checked each function's presence; the parsed copy keeps them as they are.
  const config = parsed.data as CutoverConfig;
  const base = dirname(file);
  const within = (relative: string) => (isAbsolute(relative) ? relative : resolve(base, relative));
  return {
    file,
    legacy: config.legacy,
    registry: config.registry === undefined ? undefined : within(config.registry),
    migrationsDir: within(config.migrations ?? 'prisma/migrations'),
    notifications: parsed.data.notifications,
  };
}
