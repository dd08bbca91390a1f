import { z } from 'zod';
import { UsageError } from './errors.js';
import { redactSecrets } from './log.js';

const POSTGRES_RULE = 'must be a postgres:// or postgresql:// connection string';

const postgresUrl = z
  .string()
  .trim()
  .refine((value) => /^postgres(ql)?:\/\//.test(value), { message: POSTGRES_RULE });

/**
 * What a rejected connection string may show of itself: its scheme, never the rest. Whatever
 * its shape (another driver's URL, libpq keywords, user:password@host), the rest may hold a
 * password, and an error message ends up in terminals, CI logs and issue reports.
 */
function rejectedUrl(value: string): string {
  const scheme = /^\s*([a-z][a-z0-9+.-]{0,30}):\/\//i.exec(value)?.[1];
  return scheme ? `got a ${scheme}:// URL (the rest is not shown)` : 'got something else (not shown: it may hold a password)';
}

const percent = z.coerce
  .number({ error: 'must be a number from 0 to 100' })
  .min(0, 'must be a number from 0 to 100')
  .max(100, 'must be a number from 0 to 100');

const bool = z.enum(['true', 'false', '1', '0'], { error: "must be 'true' or 'false'" }).transform((value) => value === 'true' || value === '1');

const envSchema = z.object({
  DATABASE_URL: postgresUrl.optional(),
  DIRECT_URL: postgresUrl.optional(),
  CUTOVER_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  CUTOVER_HOME: z.string().min(1).optional(),
  PGBOSS_ROLLOUT_PERCENTAGE: percent.optional(),
  USE_PGBOSS: bool.optional(),
  CUTOVER_FLAG_TTL_MS: z.coerce
    .number({ error: 'must be a number of milliseconds from 100 to 600000' })
    .int('must be a whole number of milliseconds')
    .min(100, 'must be a number of milliseconds from 100 to 600000')
    .max(600_000, 'must be a number of milliseconds from 100 to 600000')
    .default(5000),
});

export interface Config {
  /** Undefined means: use the embedded Postgres in `dataDir`. May be a transaction pooler's. */
  databaseUrl: string | undefined;
  /**
   * A session to the same database (DIRECT_URL, `--direct-url`), for what a transaction pooler
   * cannot carry: LISTEN, `db migrate`, the locks of long commands. Undefined: everything uses
   * `databaseUrl` (leases instead of session locks when that is a pooler's).
   */
  directUrl: string | undefined;
  logLevel: z.infer<typeof envSchema>['CUTOVER_LOG_LEVEL'];
  /** Where the embedded Postgres keeps its data. @defaultValue `<cwd>/.cutover` */
  dataDir: string;
  /** Environment overrides kept for teams coming from the env-var approach (DESIGN §6). */
  envOverride: { percent?: number; usePgboss?: boolean };
  /**
   * How long a process may route on cached flags before re-reading them (LISTEN/NOTIFY makes
   * changes visible sooner). Set it alike in every process. @defaultValue 5000
   */
  flagTtlMs: number;
}

export interface ConfigInput {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  databaseUrl?: string;
  directUrl?: string;
}

/** Environment and flags to a typed Config; a bad value is a UsageError naming the variable. */
export function loadConfig(input: ConfigInput = {}): Config {
  const env = input.env ?? process.env;
  const cwd = input.cwd ?? process.cwd();
  const raw = Object.fromEntries(
    Object.keys(envSchema.shape).flatMap((key) => {
      const value = env[key];
      return value === undefined || value === '' ? [] : [[key, value]];
    }),
  );
  const parsed = envSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = String(issue?.path[0] ?? 'environment');
    const value = String(raw[key] ?? '');
    // Other variables are echoed to help fix them, still through redactSecrets in case one holds a credential.
    const got = key === 'DATABASE_URL' || key === 'DIRECT_URL' ? rejectedUrl(value) : `got '${redactSecrets(value)}'`;
    throw new UsageError(`${key} ${issue?.message ?? 'is invalid'}, ${got}`);
  }
  let databaseUrl = parsed.data.DATABASE_URL;
  if (input.databaseUrl !== undefined) {
    const flag = postgresUrl.safeParse(input.databaseUrl);
    if (!flag.success) throw new UsageError(`--database-url ${POSTGRES_RULE}, ${rejectedUrl(input.databaseUrl)}`);
    databaseUrl = flag.data;
  }
  let directUrl = parsed.data.DIRECT_URL;
  if (input.directUrl !== undefined) {
    const flag = postgresUrl.safeParse(input.directUrl);
    if (!flag.success) throw new UsageError(`--direct-url ${POSTGRES_RULE}, ${rejectedUrl(input.directUrl)}`);
    directUrl = flag.data;
  }
  // The embedded Postgres is a session of its own; a direct URL beside it would be another database.
  if (directUrl !== undefined && databaseUrl === undefined) {
    throw new UsageError('DIRECT_URL (or --direct-url) is set but DATABASE_URL (or --database-url) is not: give both (the direct URL is a session to the same database), or DATABASE_URL alone');
  }
  const envOverride: Config['envOverride'] = {};
  if (parsed.data.PGBOSS_ROLLOUT_PERCENTAGE !== undefined) envOverride.percent = parsed.data.PGBOSS_ROLLOUT_PERCENTAGE;
  if (parsed.data.USE_PGBOSS !== undefined) envOverride.usePgboss = parsed.data.USE_PGBOSS;
  return {
    databaseUrl,
    directUrl,
    logLevel: parsed.data.CUTOVER_LOG_LEVEL,
    dataDir: parsed.data.CUTOVER_HOME ?? `${cwd}/.cutover`,
    envOverride,
    flagTtlMs: parsed.data.CUTOVER_FLAG_TTL_MS,
  };
}
