import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { EngineOutcome } from '../../src/reconcile/compare.js';
import { evaluateGates } from '../../src/plans/gates.js';
import { describeStep, gatesSchema, loadPlan } from '../../src/plans/plan.js';
import { repoRoot } from '../helpers/cli.js';

/** An engine's numbers; dead letters are set on their own, so each gate can be tripped alone. */
function outcome(engine: 'LEGACY' | 'PGBOSS', jobs: number, succeeded: number, p95: number | null, deadLetters = 0): EngineOutcome {
  return { engine, jobs, succeeded, successRate: jobs ? succeeded / jobs : null, meanAttempts: 1, latencySeconds: { p50: p95, p95, p99: p95 }, deadLetters };
}

const gates = gatesSchema.parse({ minSamples: 10, maxFailureRateDelta: 0.02, maxP95LatencyRatio: 1.5, maxDeadLetters: 1 });
const legacy = outcome('LEGACY', 100, 100, 1);
const clean = { legacy, lost: 0, double: 0 };

/** The status of every gate evaluated, by name. */
function statuses(input: Parameters<typeof evaluateGates>[1], with_ = gates): Record<string, string> {
  return Object.fromEntries(evaluateGates(with_, input).results.map((r) => [r.gate, r.status]));
}

describe('gates', () => {
  it('pass when pg-boss does as well as legacy', () => {
    const result = evaluateGates(gates, { pgboss: outcome('PGBOSS', 100, 99, 1), legacy: outcome('LEGACY', 100, 99, 1.2), lost: 0, double: 0 });
    expect(result.status).toBe('pass');
    expect(result.results.map((r) => [r.gate, r.status])).toEqual([
      ['minSamples', 'pass'],
      ['zeroFindings', 'pass'],
      ['maxDeadLetters', 'pass'],
      ['maxFailureRateDelta', 'pass'],
      ['maxP95LatencyRatio', 'pass'],
    ]);
  });

  it('are inconclusive below the minimum sample', () => {
    const result = evaluateGates(gates, { pgboss: outcome('PGBOSS', 3, 3, 1), legacy: outcome('LEGACY', 100, 100, 1), lost: 0, double: 0 });
    expect(result.status).toBe('inconclusive');
    expect(result.results.find((r) => r.gate === 'minSamples')?.detail).toBe('pg-boss 3, legacy 100 finished jobs (need 10 each)');
    // Too few legacy jobs is just as inconclusive.
    expect(evaluateGates(gates, { ...clean, legacy: outcome('LEGACY', 9, 9, 1), pgboss: outcome('PGBOSS', 100, 100, 1) }).status).toBe('inconclusive');
  });

  it('fail on the failure rate alone: no dead letter, latency and findings fine', () => {
    const worse = outcome('PGBOSS', 100, 95, 1); // 5 points worse than legacy, 0 dead letters
    expect(statuses({ ...clean, pgboss: worse })).toEqual({ minSamples: 'pass', zeroFindings: 'pass', maxDeadLetters: 'pass', maxFailureRateDelta: 'fail', maxP95LatencyRatio: 'pass' });
    expect(evaluateGates(gates, { ...clean, pgboss: worse }).status).toBe('fail');
    // The same numbers pass once the gate allows 6 points; 3 points fail a 2-point gate.
    expect(evaluateGates(gatesSchema.parse({ ...gates, maxFailureRateDelta: 0.06 }), { ...clean, pgboss: worse }).status).toBe('pass');
    expect(evaluateGates(gates, { ...clean, pgboss: outcome('PGBOSS', 100, 97, 1) }).status).toBe('fail');
    expect(evaluateGates(gates, { ...clean, pgboss: worse }).results.find((r) => r.gate === 'maxFailureRateDelta')?.detail).toBe(
      'failure rate 5.00 points vs legacy (at most 2.00)',
    );
  });

  it('pass a failure rate exactly at the limit ("at most", as the runbook says)', () => {
    // The default plan's 1-point gate: pg-boss 99/100 against legacy 100/100 is 1 point.
    const onePoint = gatesSchema.parse({ ...gates, maxFailureRateDelta: 0.01 });
    expect(evaluateGates(onePoint, { ...clean, pgboss: outcome('PGBOSS', 100, 99, 1) }).results.find((r) => r.gate === 'maxFailureRateDelta')).toMatchObject({
      status: 'pass',
      detail: 'failure rate 1.00 points vs legacy (at most 1.00)',
    });
    expect(evaluateGates(gates, { ...clean, pgboss: outcome('PGBOSS', 100, 98, 1) }).status).toBe('pass');
  });

  it('fail on p95 latency alone, and pass at exactly the ratio', () => {
    expect(statuses({ ...clean, pgboss: outcome('PGBOSS', 100, 100, 2) })).toEqual({
      minSamples: 'pass',
      zeroFindings: 'pass',
      maxDeadLetters: 'pass',
      maxFailureRateDelta: 'pass',
      maxP95LatencyRatio: 'fail',
    });
    expect(evaluateGates(gates, { ...clean, pgboss: outcome('PGBOSS', 100, 100, 1.5) }).status).toBe('pass');
    // Nothing to measure latency on is inconclusive, not a pass.
    expect(evaluateGates(gates, { ...clean, legacy: outcome('LEGACY', 100, 100, 0), pgboss: outcome('PGBOSS', 100, 100, 1) }).status).toBe('inconclusive');
    expect(evaluateGates(gates, { ...clean, pgboss: outcome('PGBOSS', 100, 100, null) }).status).toBe('inconclusive');
  });

  it('fail on dead letters alone, even before the sample is big enough', () => {
    // 2 dead letters (limit 1) while the failure rate and latency are as legacy's.
    expect(statuses({ ...clean, pgboss: outcome('PGBOSS', 100, 100, 1, 2) })).toEqual({
      minSamples: 'pass',
      zeroFindings: 'pass',
      maxDeadLetters: 'fail',
      maxFailureRateDelta: 'pass',
      maxP95LatencyRatio: 'pass',
    });
    expect(evaluateGates(gates, { ...clean, pgboss: outcome('PGBOSS', 100, 100, 1, 1) }).status).toBe('pass');
    // No need to wait for more damage: 4 jobs, below minSamples, still fail.
    const early = evaluateGates(gates, { ...clean, pgboss: outcome('PGBOSS', 4, 4, 1, 2) });
    expect(early.status).toBe('fail');
    expect(early.results.map((r) => r.gate)).toEqual(['minSamples', 'zeroFindings', 'maxDeadLetters']);
  });

  it('fail on a lost or a double-run job alone, and ignore findings when zeroFindings is off', () => {
    const pgboss = outcome('PGBOSS', 100, 100, 1);
    expect(statuses({ ...clean, pgboss, lost: 1 })).toMatchObject({ zeroFindings: 'fail', maxDeadLetters: 'pass', maxFailureRateDelta: 'pass', maxP95LatencyRatio: 'pass' });
    expect(evaluateGates(gates, { ...clean, pgboss, lost: 1 }).status).toBe('fail');
    expect(evaluateGates(gates, { ...clean, pgboss, double: 1 }).status).toBe('fail');
    const lenient = gatesSchema.parse({ ...gates, zeroFindings: false });
    expect(evaluateGates(lenient, { ...clean, pgboss, lost: 1, double: 1 }).status).toBe('pass');
    expect(evaluateGates(lenient, { ...clean, pgboss }).results.map((r) => r.gate)).not.toContain('zeroFindings');
  });
});

describe('plan files', () => {
  it('ship a default and a demo plan that validate', async () => {
    const plan = await loadPlan(join(repoRoot, 'rollout', 'default.yaml'));
    expect(plan.steps.filter((s) => 'setWeight' in s).map((s) => ('setWeight' in s ? s.setWeight : 0))).toEqual([1, 5, 25, 50, 100]);
    expect(describeStep(plan.steps[1]!)).toBe('soak for 15 minutes');
    expect((await loadPlan(join(repoRoot, 'rollout', 'demo.yaml'))).name).toBe('demo');
  });

  it('name the file, the path and what was expected', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cutover-plan-'));
    const write = async (name: string, text: string) => {
      await writeFile(join(dir, name), text);
      return join(dir, name);
    };
    await expect(loadPlan(await write('a.yaml', 'name: a\nsteps:\n  - setWeight: 101\n'))).rejects.toThrow(/^a\.yaml: steps\.0\.setWeight: Too big/);
    await expect(loadPlan(await write('b.yaml', 'name: b\nsteps:\n  - pause: { duration: soon }\n'))).rejects.toThrow(/b\.yaml: steps\.0.*duration/);
    await expect(loadPlan(await write('c.json', '{"name": "c", "steps": []}'))).rejects.toThrow(/c\.json: steps: Too small/);
    await expect(loadPlan(await write('d.yaml', 'name: [unclosed'))).rejects.toThrow(/d\.yaml: not valid YAML/);
    await expect(loadPlan(join(dir, 'missing.yaml'))).rejects.toThrow(/cannot read plan file .*missing\.yaml: ENOENT/);
  });
});
