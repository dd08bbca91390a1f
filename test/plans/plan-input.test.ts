import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/support/errors.js';
import { loadPlan, MAX_PLAN_ALIASES, MAX_PLAN_BYTES } from '../../src/plans/plan.js';

// Plan files as an operator mistypes them (or as someone hostile writes them): each is one
// UsageError naming the file, where in it, and what is allowed there.

let dir: string;
beforeAll(async () => (dir = await mkdtemp(join(tmpdir(), 'cutover-plan-input-'))));
afterAll(async () => rm(dir, { recursive: true, force: true }));

async function load(name: string, text: string): Promise<unknown> {
  await writeFile(join(dir, name), text);
  return loadPlan(join(dir, name)).catch((error: unknown) => error);
}

async function refusal(name: string, text: string): Promise<string> {
  const error = await load(name, text);
  expect(error).toBeInstanceOf(UsageError);
  const message = (error as Error).message;
  expect(message).not.toContain('\n');
  return message;
}

describe('plan files', () => {
  it.each([
    ['an unknown top-level field', 'name: p\nrollback: always\nsteps: [{ setWeight: 1 }]\n', "(top level): unknown field 'rollback' (a plan has name, jobType, steps)"],
    ['two unknown fields', 'name: p\na: 1\nb: 2\nsteps: [{ setWeight: 1 }]\n', "(top level): unknown fields 'a', 'b' (a plan has name, jobType, steps)"],
    ['an unknown step', 'name: p\nsteps:\n  - setWeight: 1\n  - teleport: 100\n', "steps.1: unknown step 'teleport' (a step is one of setWeight, pause, analysis)"],
    ['a step of two kinds', 'name: p\nsteps:\n  - { setWeight: 1, pause: {} }\n', 'steps.0: each step must be exactly one of setWeight, pause, analysis, got setWeight + pause'],
    ['an unknown pause field', 'name: p\nsteps:\n  - pause: { until: tomorrow }\n', "steps.0.pause: unknown field 'until' (pause has duration)"],
    ['an unknown analysis field', 'name: p\nsteps:\n  - analysis: { every: 5m }\n', "steps.0.analysis: unknown field 'every' (analysis has gates, interval, count)"],
    ['a gate on a metric that does not exist', 'name: p\nsteps:\n  - analysis: { gates: { maxP99LatencyRatio: 2 } }\n', "steps.0.analysis.gates: unknown gate 'maxP99LatencyRatio' (gates has minSamples, maxFailureRateDelta, maxP95LatencyRatio, maxDeadLetters, zeroFindings)"],
    ['a negative duration in seconds', 'name: p\nsteps:\n  - pause: { duration: -30 }\n', 'steps.0.pause.duration: a duration must not be negative, got -30'],
    ['a negative duration in words', 'name: p\nsteps:\n  - analysis: { interval: -5m }\n', 'steps.0.analysis.interval: a duration must not be negative, got "-5m"'],
    ['a duration that is not one', 'name: p\nsteps:\n  - pause: { duration: soon }\n', 'steps.0.pause.duration: expected a number with a unit (500ms, 90s, 30m, 2h, 7d); a bare number is seconds, got "soon"'],
    ['a weight that is not a number', 'name: p\nsteps:\n  - setWeight: .nan\n', 'steps.0.setWeight: Invalid input: expected number, received NaN'],
    ['a name with a terminal escape', 'name: "p\\e[2J"\nsteps: [{ setWeight: 1 }]\n', 'name: must not contain control characters'],
    ['a key given twice', 'name: p\nsteps: [{ setWeight: 1 }]\nsteps: [{ setWeight: 100 }]\n', 'not valid YAML: Map keys must be unique at line 3, column 1'],
  ])('%s', async (_case, text, expected) => {
    expect(await refusal('p.yaml', text)).toBe(`p.yaml: ${expected}`);
  });

  it('refuses a billion-laughs YAML bomb at once, without expanding it', async () => {
    const levels = 'abcdefghi'.split('');
    const bomb = [
      `a: &a [${Array(9).fill('"lol"').join(', ')}]`,
      ...levels.slice(1).map((name, i) => `${name}: &${name} [${Array(9).fill(`*${levels[i]}`).join(', ')}]`),
      'name: bomb',
      'steps: [{ setWeight: 1 }]',
    ].join('\n');
    const started = performance.now();
    expect(await refusal('bomb.yaml', bomb)).toBe(`bomb.yaml: refused: its YAML aliases expand more than ${MAX_PLAN_ALIASES} times (a plan needs none)`);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('still allows a few anchors, e.g. gates shared by two analyses', async () => {
    const plan = await load(
      'shared.yaml',
      'name: shared\nsteps:\n  - setWeight: 5\n  - analysis: { gates: &gates { minSamples: 10 } }\n  - setWeight: 50\n  - analysis: { gates: *gates }\n',
    );
    expect(plan).toMatchObject({ name: 'shared', steps: [{ setWeight: 5 }, { analysis: { gates: { minSamples: 10 } } }, { setWeight: 50 }, { analysis: { gates: { minSamples: 10 } } }] });
  });

  it('refuses a file too big to be a plan before reading it', async () => {
    const text = `name: huge\n# ${'x'.repeat(MAX_PLAN_BYTES)}\nsteps: [{ setWeight: 1 }]\n`;
    expect(await refusal('huge.yaml', text)).toBe(`plan file huge.yaml is ${Math.ceil(text.length / 1024)} KiB; a plan is at most ${MAX_PLAN_BYTES / 1024} KiB`);
  });

  it('refuses a directory', async () => {
    expect((await loadPlan(dir).catch((e: unknown) => e)) as Error).toMatchObject({ message: `plan file ${dir} is not a file` });
  });
});
