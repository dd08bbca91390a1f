// What a job registry module needs, and nothing heavier: job processes import it on every start.
export { defineJob, maxAttempts, retryDelaySeconds } from './define.js';
export type { AnyJobDefinition, JobDefinition, JobDefinitionInput, JobContext, RetryPolicy, SideEffects, Engine, Isolation, JobSchedule, JobArguments, JobName, JobTypes, JobTypesOf, UntypedJobs } from './define.js';
export { NonRetryableError, RateLimitError } from './errors.js';
