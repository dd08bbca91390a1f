/**
 * Every error an operator can cause or meet is one of these classes; the CLI maps the class to
 * an exit code in one place (DESIGN §8): 1 a check failed, 2 bad input, 3 runtime failure.
 */
export abstract class CutoverError extends Error {
  abstract readonly exitCode: 1 | 2 | 3;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad input: a flag value, a payload, a plan file, an argument. Nothing was written. */
export class UsageError extends CutoverError {
  readonly exitCode = 2 as const;
}

/** A check ran and found something: discrepancies, a failed gate, a held lock. */
export class CheckFailedError extends CutoverError {
  readonly exitCode = 1 as const;
}

/** The environment failed us: database unreachable, a migration that cannot apply. */
export class RuntimeFailure extends CutoverError {
  readonly exitCode = 3 as const;
}

export class DatabaseUnavailableError extends RuntimeFailure {}

export class MigrationChecksumError extends RuntimeFailure {
  constructor(readonly migrationName: string) {
    super(
      `migration ${migrationName} was changed after it was applied (checksum differs); ` +
        'restore the original file and put the change in a new migration',
    );
  }
}

export class UnknownJobTypeError extends UsageError {
  constructor(
    readonly type: string,
    known: readonly string[],
  ) {
    super(`unknown job type '${type}' (known: ${known.join(', ') || 'none'})`);
  }
}

export class InvalidPayloadError extends UsageError {
  constructor(
    readonly type: string,
    detail: string,
  ) {
    super(`invalid payload for ${type}: ${detail}`);
  }
}

/** The legacy adapter (cutover.config) names something the table lacks, or one of its functions failed. */
export class AdapterError extends UsageError {}

/**
 * pg-boss already holds a job with an id being enqueued: it drops such a send silently
 * (returns null), which must never pass for success, nor fall back to legacy (that job may run).
 */
export class JobIdTakenError extends UsageError {
  constructor(
    readonly type: string,
    readonly ids: readonly string[],
  ) {
    super(`pg-boss already has ${type} job(s) ${ids.slice(0, 3).join(', ')}${ids.length > 3 ? ` and ${ids.length - 3} more` : ''}: not enqueued, nothing written`);
  }
}

/** A job ran past its type's `timeoutSeconds`: its signal was aborted and the attempt failed (retryable). */
export class JobTimeoutError extends RuntimeFailure {
  constructor(
    readonly type: string,
    readonly timeoutSeconds: number,
  ) {
    super(`timed out after ${timeoutSeconds}s`);
  }
}

/** The installed pg-boss does not behave as the version cutover supports: refused rather than guessed at. */
export class UnsupportedPgbossError extends RuntimeFailure {}

/** An operation that moves jobs onto or off pg-boss was called without a pg-boss instance. */
export class PgbossRequiredError extends RuntimeFailure {
  constructor(
    readonly operation: string,
    detail = '',
  ) {
    super(`${operation} needs a pg-boss instance${detail}`);
  }
}

/** A plan run read back by id is gone: deleted by hand while a command worked on it. */
export class PlanRunVanishedError extends RuntimeFailure {
  constructor(readonly runId: string) {
    super(`plan run ${runId} vanished`);
  }
}

/** Retrying a failed legacy row found it no longer failed (or gone): another worker or an operator acted first. */
export class LegacyRetryConflictError extends RuntimeFailure {
  constructor(
    readonly rowId: string,
    readonly found: 'changed' | 'vanished',
  ) {
    super(`retry of ${rowId}: the failed row ${found === 'changed' ? 'changed meanwhile' : 'vanished'}`);
  }
}

/** What a thrown value says, whether or not it is an Error. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * A pg-boss release or database schema outside the versions cutover was tested against
 * (pgboss-schema/version.ts SUPPORTED_PGBOSS): refused before pg-boss starts. A found version
 * is null where it could not be read (the package) or pg-boss is not installed (the schema).
 */
export class UnsupportedPgbossVersionError extends UnsupportedPgbossError {
  readonly packageVersion: string | null;
  readonly schemaVersion: number | null;
  readonly supportedPackageRange: string;
  readonly supportedSchemaVersions: readonly number[];
  constructor(found: { packageVersion: string | null; schemaVersion: number | null; supportedPackageRange: string; supportedSchemaVersions: readonly number[]; reason: string }) {
    super(`unsupported pg-boss: ${found.reason}; nothing was started`);
    this.packageVersion = found.packageVersion;
    this.schemaVersion = found.schemaVersion;
    this.supportedPackageRange = found.supportedPackageRange;
    this.supportedSchemaVersions = found.supportedSchemaVersions;
  }
}
