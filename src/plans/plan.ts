import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DURATION_RULE, formatDuration, parseDuration } from '../support/duration.js';
import { UsageError } from '../support/errors.js';
import { errorCode } from '../support/pg-errors.js';
import { isPrintable } from '../support/printable.js';
import { DEFAULT_FLAG } from '../state/flags.js';

const duration = z
  .union([z.string(), z.number()])
  .transform((value, ctx) => {
    const seconds = parseDuration(value);
    if (seconds !== undefined) return seconds;
    const negative = typeof value === 'number' ? value < 0 : value.trim().startsWith('-');
    ctx.addIssue({ code: 'custom', message: negative ? `a duration must not be negative, got ${JSON.stringify(value)}` : `expected ${DURATION_RULE}, got ${JSON.stringify(value)}` });
    return z.NEVER;
  });

export const gatesSchema = z
  .object({
    /** Finished jobs needed on each engine before any other gate can pass. */
    minSamples: z.number().int().min(1).default(30),
    /** pg-boss failure rate minus legacy's, at most (0.02 = two points). */
    maxFailureRateDelta: z.number().min(0).max(1).default(0.02),
    /** pg-boss p95 latency over legacy's, at most. */
    maxP95LatencyRatio: z.number().positive().default(1.5),
    /** Dead-lettered pg-boss jobs in the window, at most. */
    maxDeadLetters: z.number().int().min(0).default(0),
    /** Reconcile must find no lost and no double-run job. */
    zeroFindings: z.boolean().default(true),
  })
  .strict();

const analysisSchema = z
  .object({
    gates: gatesSchema.default(gatesSchema.parse({})),
    /** How often gates are evaluated. */
    interval: duration.default(60),
    /** Evaluations before an inconclusive analysis stops waiting and pauses for a person. */
    count: z.number().int().min(1).default(10),
  })
  .strict();

type Step =
  | { setWeight: number }
  | { pause: { duration?: number } }
  | { analysis: z.infer<typeof analysisSchema> };

const stepKinds = ['setWeight', 'pause', 'analysis'] as const;

// One object with optional keys rather than a union: errors then point at the field that is
// wrong (steps.2.pause.duration) instead of "matches none of the step kinds".
const step = z
  .object({
    setWeight: z.number().min(0).max(100).optional(),
    pause: z.object({ duration: duration.optional() }).strict().optional(),
    analysis: analysisSchema.optional(),
  })
  .strict()
  .superRefine((value, ctx) => {
    const kinds = stepKinds.filter((kind) => value[kind] !== undefined);
    if (kinds.length !== 1) ctx.addIssue({ code: 'custom', message: `each step must be exactly one of ${stepKinds.join(', ')}, got ${kinds.join(' + ') || 'none'}` });
  })
  .transform((value) => value as Step);

export const planSchema = z
  .object({
    // Printed in every progress line and stored in the audit log: one plain line.
    name: z
      .string()
      .min(1)
      .max(100)
      .refine((value) => isPrintable(value, { multiline: false }), 'must not contain control characters'),
    /** The job type the plan ramps, or `*` for every type without a flag of its own. */
    jobType: z.string().min(1).default(DEFAULT_FLAG),
    steps: z.array(step).min(1),
  })
  .strict();

/** The fields each part of a plan may have, for "unknown field" messages that list them. */
const FIELDS = {
  plan: Object.keys(planSchema.shape),
  step: [...stepKinds],
  pause: ['duration'],
  analysis: Object.keys(analysisSchema.shape),
  gates: Object.keys(gatesSchema.shape),
} as const;

export type Plan = z.infer<typeof planSchema>;
export type PlanStep = Plan['steps'][number];
export type Gates = z.infer<typeof gatesSchema>;

/**
 * A plan is a few dozen lines; anything this big is not one (a wrong file, a generated bomb),
 * and is refused before it is read into memory.
 */
export const MAX_PLAN_BYTES = 256 * 1024;

/**
 * YAML aliases a plan may use. A plan needs none; a handful of anchors for shared gates is
 * plausible. A "billion laughs" document nests aliases to expand exponentially: the yaml
 * parser counts alias expansions and stops at this many, long before memory or time matter.
 */
export const MAX_PLAN_ALIASES = 50;

/** Which part of a plan an issue path points into, for the list of fields that part may have. */
function partAt(path: readonly PropertyKey[]): keyof typeof FIELDS {
  const last = path[path.length - 1];
  if (path.length === 0) return 'plan';
  if (path[0] === 'steps' && path.length === 2) return 'step';
  return last === 'pause' || last === 'analysis' || last === 'gates' ? last : 'plan';
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.length ? issue.path.map(String).join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') {
    const part = partAt(issue.path);
    const what = part === 'step' ? 'step' : part === 'gates' ? 'gate' : 'field';
    const keys = issue.keys.map((key) => `'${key}'`).join(', ');
    const allowed = part === 'step' ? `a step is one of ${FIELDS.step.join(', ')}` : `${part === 'plan' ? 'a plan' : part} has ${FIELDS[part].join(', ')}`;
    return `${path}: unknown ${what}${issue.keys.length > 1 ? 's' : ''} ${keys} (${allowed})`;
  }
  return `${path}: ${issue.message}`;
}

function parseText(file: string, text: string): unknown {
  const json = file.endsWith('.json');
  try {
    // uniqueKeys (the default) refuses `steps:` given twice rather than keeping the last one.
    return json ? JSON.parse(text) : parseYaml(text, { maxAliasCount: MAX_PLAN_ALIASES, uniqueKeys: true });
  } catch (error) {
    // The yaml parser's first line ends "at line 3, column 1:" before a quote of the text.
    const message = ((error as Error).message.split('\n')[0] ?? '').replace(/:$/, '');
    if (/alias count/i.test(message)) {
      throw new UsageError(`${basename(file)}: refused: its YAML aliases expand more than ${MAX_PLAN_ALIASES} times (a plan needs none)`);
    }
    throw new UsageError(`${basename(file)}: not valid ${json ? 'JSON' : 'YAML'}: ${message}`);
  }
}

/** A plan file (YAML or JSON), validated; errors name the file, the path and what was expected. */
export async function loadPlan(file: string): Promise<Plan> {
  let text: string;
  try {
    const { size, isFile } = await stat(file).then((info) => ({ size: info.size, isFile: info.isFile() }));
    if (!isFile) throw new UsageError(`plan file ${file} is not a file`);
    if (size > MAX_PLAN_BYTES) throw new UsageError(`plan file ${basename(file)} is ${Math.ceil(size / 1024)} KiB; a plan is at most ${MAX_PLAN_BYTES / 1024} KiB`);
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`cannot read plan file ${file}: ${errorCode(error) ?? String(error)}`);
  }
  const parsed = planSchema.safeParse(parseText(file, text));
  if (!parsed.success) throw new UsageError(`${basename(file)}: ${describeIssue(parsed.error.issues[0]!)}`);
  return parsed.data;
}

/** A step in words, for `plan show` and progress lines. */
export function describeStep(step: PlanStep): string {
  if ('setWeight' in step) return `route ${step.setWeight}% of new jobs to pg-boss`;
  if ('pause' in step) return step.pause.duration === undefined ? 'pause until advanced by hand' : `soak for ${formatDuration(step.pause.duration)}`;
  const { gates, interval, count } = step.analysis;
  return (
    `analysis every ${formatDuration(interval)}, up to ${count} times: at least ${gates.minSamples} finished jobs per engine; ` +
    `failure rate at most ${(gates.maxFailureRateDelta * 100).toFixed(1)} points above legacy; p95 latency at most ${gates.maxP95LatencyRatio}× legacy; ` +
    `at most ${gates.maxDeadLetters} dead letters${gates.zeroFindings ? '; no lost or double-run jobs' : ''}`
  );
}

