import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import ms, { type StringValue } from 'ms';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { UsageError } from '../errors.js';

const duration = z
  .union([z.string(), z.number()])
  .transform((value, ctx) => {
    const millis = typeof value === 'number' ? value * 1000 : ms(value.trim() as StringValue);
    if (typeof millis !== 'number' || !Number.isFinite(millis) || millis < 0) {
      ctx.addIssue({ code: 'custom', message: `expected a duration like 30s, 10m or 2h (or seconds), got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return millis / 1000;
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
    name: z.string().min(1),
    /** The job type the plan ramps, or `*` for every type without a flag of its own. */
    jobType: z.string().min(1).default('*'),
    steps: z.array(step).min(1),
  })
  .strict();

export type Plan = z.infer<typeof planSchema>;
export type PlanStep = Plan['steps'][number];
export type Gates = z.infer<typeof gatesSchema>;

/** A plan file (YAML or JSON), validated; errors name the file, the path and what was expected. */
export async function loadPlan(file: string): Promise<Plan> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read plan file ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  let data: unknown;
  try {
    data = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new UsageError(`${basename(file)}: not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(error as Error).message.split('\n')[0]}`);
  }
  const parsed = planSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const path = issue.path.length ? issue.path.map(String).join('.') : '(top level)';
    throw new UsageError(`${basename(file)}: ${path}: ${issue.message}`);
  }
  return parsed.data;
}

/** A step in words, for `plan show` and progress lines. */
export function describeStep(step: PlanStep): string {
  if ('setWeight' in step) return `route ${step.setWeight}% of new jobs to pg-boss`;
  if ('pause' in step) return step.pause.duration === undefined ? 'pause until advanced by hand' : `soak for ${formatSeconds(step.pause.duration)}`;
  const { gates, interval, count } = step.analysis;
  return (
    `analysis every ${formatSeconds(interval)}, up to ${count} times: at least ${gates.minSamples} finished jobs per engine; ` +
    `failure rate at most ${(gates.maxFailureRateDelta * 100).toFixed(1)} points above legacy; p95 latency at most ${gates.maxP95LatencyRatio}× legacy; ` +
    `at most ${gates.maxDeadLetters} dead letters${gates.zeroFindings ? '; no lost or double-run jobs' : ''}`
  );
}

export function formatSeconds(seconds: number): string {
  return ms(Math.round(seconds * 1000), { long: true });
}
