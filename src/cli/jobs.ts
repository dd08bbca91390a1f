import type { Command } from 'commander';
import { loadConfigFile } from '../config/file.js';
import { describeRegistry, type JobDescription } from '../jobs/describe.js';
import { loadRegistry } from '../jobs/registry.js';
import { globalOptions } from './context.js';
import { printJson, printLines } from './output.js';
import { registryOption } from './options.js';

type Schema = Record<string, unknown>;

const SIDE_EFFECTS: Record<JobDescription['sideEffects'], string> = {
  none: 'none: running it twice changes nothing outside',
  idempotent: 'idempotent: running it twice has the effect of once',
  external: 'external: each run is seen outside, so a double run shows (reconcile counts them)',
};

/** zod states an integer's range as the safe-integer bounds: no limit a reader needs to see. */
const isSafeBound = (value: unknown) => value === Number.MAX_SAFE_INTEGER || value === Number.MIN_SAFE_INTEGER;

const isSchema = (value: unknown): value is Schema => typeof value === 'object' && value !== null && !Array.isArray(value);

/** One property's type in a few words: `string (URL)`, `integer 0..600000`, `"a" | "b"`. */
function typeText(schema: Schema): string {
  if (Array.isArray(schema.enum)) return schema.enum.map((value) => JSON.stringify(value)).join(' | ');
  if ('const' in schema) return JSON.stringify(schema.const);
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (Array.isArray(alternatives)) return alternatives.map((item) => (isSchema(item) ? typeText(item) : '?')).join(' | ');
  const type = Array.isArray(schema.type) ? schema.type.join(' | ') : typeof schema.type === 'string' ? schema.type : 'any';
  const notes: string[] = [];
  if (typeof schema.format === 'string') notes.push(schema.format === 'uri' ? 'URL' : schema.format);
  if (typeof schema.minLength === 'number' && schema.minLength > 0) notes.push(schema.minLength === 1 ? 'not empty' : `at least ${schema.minLength} characters`);
  if (typeof schema.maxLength === 'number') notes.push(`at most ${schema.maxLength} characters`);
  const min = isSafeBound(schema.minimum) ? undefined : schema.minimum;
  const max = isSafeBound(schema.maximum) ? undefined : schema.maximum;
  if (typeof min === 'number' && typeof max === 'number') notes.push(`${min}..${max}`);
  else if (typeof min === 'number') notes.push(`>= ${min}`);
  else if (typeof max === 'number') notes.push(`<= ${max}`);
  if (type === 'array' && isSchema(schema.items)) return `array of ${typeText(schema.items)}`;
  if (type === 'object' && isSchema(schema.properties)) return `{ ${fields(schema).join(', ')} }`;
  return notes.length ? `${type} (${notes.join(', ')})` : type;
}

/** An object schema's properties as `name: type`, optional ones marked `name?`. */
function fields(schema: Schema): string[] {
  const properties = isSchema(schema.properties) ? schema.properties : {};
  const required = new Set(Array.isArray(schema.required) ? schema.required.map(String) : []);
  // A team's property name is printed quoted unless plain, so it cannot pass as layout or an escape.
  const name = (key: string) => (/^[A-Za-z_$][\w$-]*$/.test(key) ? key : JSON.stringify(key));
  const listed = Object.entries(properties).map(([key, value]) => `${name(key)}${required.has(key) ? '' : '?'}: ${isSchema(value) ? typeText(value) : 'any'}`);
  const open = schema.additionalProperties !== undefined && schema.additionalProperties !== false;
  if (open) listed.push(listed.length ? '...any other fields' : 'any fields');
  return listed;
}

function seconds(value: number): string {
  return `${value}s`;
}

function retryText(retry: JobDescription['retry']): string {
  if (retry.limit === 0) return 'none: one attempt only';
  const shown = retry.delaysSeconds.slice(0, 5).map(seconds).join(', ');
  const more = retry.delaysSeconds.length > 5 ? ', ...' : '';
  const waits = retry.delaySeconds === 0 ? 'at once' : retry.backoff ? `waiting ${shown}${more} (doubling)` : `waiting ${seconds(retry.delaySeconds)} each time`;
  return (
    `up to ${retry.limit} after the first attempt (${retry.maxAttempts} runs at most), ${waits}; ` +
    `after a rate-limit error ${retry.rateLimitFactor}x longer (at least 1s) unless the error says how long`
  );
}

/** The core fields, shown in their own lines; anything else a definition declares follows them. */
const SHOWN = new Set(['name', 'payload', 'retry', 'timeoutSeconds', 'sideEffects']);

function declaredText(key: string, value: unknown): string {
  if (key === 'isolation') return value === 'process' ? "process: on pg-boss each job runs in a child process of its own (legacy always does)" : `${String(value)}: on pg-boss jobs run in the worker's process`;
  if (key === 'memoryLimitMb') return `${String(value)} MiB heap for the job's process`;
  if (isSchema(value) && key === 'schedule' && typeof value.cron === 'string') {
    return `cron ${JSON.stringify(value.cron)}${typeof value.tz === 'string' ? ` (${value.tz})` : ''}, payload ${JSON.stringify(value.payload ?? {})}`;
  }
  return JSON.stringify(value) ?? String(value);
}

function jobLines(job: JobDescription): string[] {
  const payload = job.payload.jsonSchema
    ? job.payload.jsonSchema.type === 'object' && isSchema(job.payload.jsonSchema.properties)
      ? `{ ${fields(job.payload.jsonSchema).join(', ')} }`
      : typeText(job.payload.jsonSchema)
    : `shape not available: ${job.payload.unavailable}`;
  return [
    job.name,
    `  payload       ${payload}`,
    `  retries       ${retryText(job.retry)}`,
    `  timeout       ${seconds(job.timeoutSeconds)} per attempt`,
    `  side effects  ${SIDE_EFFECTS[job.sideEffects]}`,
    ...Object.entries(job)
      .filter(([key]) => !SHOWN.has(key))
      .map(([key, value]) => {
        // camelCase to words: memoryLimitMb -> "memory limit mb"; plain keys only, so no escape reaches the terminal.
        const label = key.replace(/[^A-Za-z0-9]/g, '').replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
        return `  ${label.padEnd(13)} ${declaredText(key, value)}`;
      }),
  ];
}

export function registerJobsCommand(program: Command): void {
  program
    .command('jobs')
    .description('the registered job types: payload shape (JSON Schema with --json), retries, timeout, side effects')
    .addOption(registryOption('job registry module (default: the config\'s, else the demo jobs)'))
    .action(async (options: { registry?: string }, command: Command) => {
      // Only the registry is read: no database is opened (nor an embedded one started) to list it.
      const global = globalOptions(command);
      const project = await loadConfigFile(global.config);
      const registry = await loadRegistry(options.registry ?? project.registry);
      const jobs = describeRegistry(registry);
      if (global.json) return printJson({ registry: registry.module ?? null, jobs });
      const lines = [`${jobs.length} job type(s) in ${registry.module ?? 'the demo registry'}`];
      for (const job of jobs) lines.push('', ...jobLines(job));
      lines.push('', `enqueue one with: cutover enqueue <type> '<payload-json>'${jobs.some((job) => job.payload.jsonSchema) ? '; the full JSON Schema of each payload: cutover jobs --json' : ''}`);
      printLines(lines);
    });
}
