import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { EngineOutcome } from '../../src/ops/compare.js';
import { evaluateGates } from '../../src/plans/gates.js';
import { describeStep, gatesSchema, loadPlan } from '../../src/plans/plan.js';
import { repoRoot } from '../helpers/cli.js';

function outcome(engine: 'LEGACY' | 'PGBOSS', jobs: number, succeeded: number, p95: number | null): EngineOutcome {
  return { engine, jobs, succeeded, successRate: jobs ? succeeded / jobs : null, meanAttempts: 1, latencySeconds: { p50: p95, p95, p99: p95 }, deadLetters: jobs - succeeded };
}

const gates = gatesSchema.parse({ minSamples: 10, maxFailureRateDelta: 0.02, maxP95LatencyRatio: 1.5, maxDeadLetters: 1 });

describe('gates', () => {
  it('pass when pg-boss does as well as legacy', () => {
    expect(evaluateGates(gates, { pgboss: outcome('PGBOSS', 100, 99, 1), legacy: outcome('LEGACY', 100, 99, 1.2), lost: 0, double: 0 }).status).toBe('pass');
  });
  it('are inconclusive below the minimum sample', () => {
    const result = evaluateGates(gates, { pgboss: outcome('PGBOSS', 3, 3, 1), legacy: outcome('LEGACY', 100, 100, 1), lost: 0, double: 0 });
    expect(result.status).toBe('inconclusive');
    expect(result.results.find((r) => r.gate === 'minSamples')?.detail).toBe('pg-boss 3, legacy 100 finished jobs (need 10 each)');
  });
  it('fail on failure rate, latency, dead letters or findings', () => {
    const base = { legacy: outcome('LEGACY', 100, 100, 1), lost: 0, double: 0 };
    expect(evaluateGates(gates, { ...base, pgboss: outcome('PGBOSS', 100, 95, 1) }).status).toBe('fail');
    expect(evaluateGates(gates, { ...base, pgboss: outcome('PGBOSS', 100, 100, 2) }).results.find((r) => r.gate === 'maxP95LatencyRatio')?.status).toBe('fail');
    expect(evaluateGates(gates, { ...base, pgboss: outcome('PGBOSS', 100, 100, 1), lost: 1 }).status).toBe('fail');
    // Dead letters fail even before the sample is big enough: no need to wait for more damage.
    expect(evaluateGates(gates, { ...base, pgboss: outcome('PGBOSS', 4, 2, 1) }).status).toBe('fail');
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
