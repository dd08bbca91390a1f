import type { EngineOutcome } from '../reconcile/compare.js';
import type { Gates } from './plan.js';

/** Rates are computed in floating point; a difference this small is no difference. */
const FLOAT_TOLERANCE = 1e-9;

export type GateStatus = 'pass' | 'fail' | 'inconclusive';

export interface GateResult {
  gate: string;
  status: GateStatus;
  detail: string;
}

export interface GateInput {
  pgboss: EngineOutcome;
  legacy: EngineOutcome;
  lost: number;
  double: number;
}

/**
 * Gates against measured numbers. Any fail fails the analysis; otherwise any inconclusive
 * (too few jobs to judge) keeps it waiting; all pass advances. Pure, so tests can feed numbers.
 */
export function evaluateGates(gates: Gates, input: GateInput): { status: GateStatus; results: GateResult[] } {
  const { pgboss, legacy } = input;
  const results: GateResult[] = [];
  const enough = pgboss.jobs >= gates.minSamples && legacy.jobs >= gates.minSamples;
  results.push({
    gate: 'minSamples',
    status: enough ? 'pass' : 'inconclusive',
    detail: `pg-boss ${pgboss.jobs}, legacy ${legacy.jobs} finished jobs (need ${gates.minSamples} each)`,
  });
  if (gates.zeroFindings) {
    const findings = input.lost + input.double;
    results.push({ gate: 'zeroFindings', status: findings ? 'fail' : 'pass', detail: `${input.lost} lost, ${input.double} double-run` });
  }
  results.push({
    gate: 'maxDeadLetters',
    status: pgboss.deadLetters > gates.maxDeadLetters ? 'fail' : 'pass',
    detail: `${pgboss.deadLetters} dead letters (at most ${gates.maxDeadLetters})`,
  });
  if (enough) {
    const delta = (1 - (pgboss.successRate ?? 0)) - (1 - (legacy.successRate ?? 0));
    results.push({
      gate: 'maxFailureRateDelta',
      // "At most" the limit: 99/100 against 100/100 is a delta of 0.010000000000000009 in floating point.
      status: delta > gates.maxFailureRateDelta + FLOAT_TOLERANCE ? 'fail' : 'pass',
      detail: `failure rate ${(delta * 100).toFixed(2)} points vs legacy (at most ${(gates.maxFailureRateDelta * 100).toFixed(2)})`,
    });
    const p95 = pgboss.latencySeconds.p95;
    const base = legacy.latencySeconds.p95;
    if (p95 === null || base === null || base === 0) {
      results.push({ gate: 'maxP95LatencyRatio', status: 'inconclusive', detail: 'no successful jobs to measure latency on' });
    } else {
      const ratio = p95 / base;
      results.push({
        gate: 'maxP95LatencyRatio',
        status: ratio > gates.maxP95LatencyRatio ? 'fail' : 'pass',
        detail: `p95 ${p95}s vs legacy ${base}s = ${ratio.toFixed(2)}× (at most ${gates.maxP95LatencyRatio}×)`,
      });
    }
  }
  const status: GateStatus = results.some((r) => r.status === 'fail') ? 'fail' : results.some((r) => r.status === 'inconclusive') ? 'inconclusive' : 'pass';
  return { status, results };
}
