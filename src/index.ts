// The public library API: an explicit list, not everything that happens to be exported.
export { defineJob, maxAttempts, retryDelaySeconds } from './jobs/define.js';
export type { JobDefinition, JobDefinitionInput, JobContext, RetryPolicy, SideEffects, Engine } from './jobs/define.js';
export { NonRetryableError, RateLimitError } from './jobs/errors.js';
export { createRegistry, loadRegistry } from './jobs/registry.js';
export type { JobRegistry } from './jobs/registry.js';
export { demoJobs } from './jobs/demo.js';
export { LegacyRunner } from './legacy/runner.js';
export type { LegacyRunnerOptions, RunnerStats } from './legacy/runner.js';
export { migrate, migrationStatus } from './db/migrate.js';
export { createPool } from './db/pool.js';
export { createPrisma } from './db/prisma.js';
export { loadConfig } from './config.js';
export { createLogger } from './log.js';
export { CutoverError, UsageError, CheckFailedError, RuntimeFailure, DatabaseUnavailableError, UnknownJobTypeError, InvalidPayloadError } from './errors.js';
