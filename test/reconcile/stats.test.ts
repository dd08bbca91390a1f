import { describe, expect, it } from 'vitest';
import { compareSuccessRates } from '../../src/reconcile/stats.js';
import { pgbossPriority } from '../../src/table/priority.js';
import { pgbossIdFor } from '../../src/table/ids.js';
import { retryDelaySeconds } from '../../src/jobs/define.js';
import { parsePercent } from '../../src/state/flags.js';

describe('success-rate verdict', () => {
  it('gives no verdict below the minimum sample', () => {
    expect(compareSuccessRates({ jobs: 5, succeeded: 0 }, { jobs: 5, succeeded: 5 }).verdict).toBe('not enough data');
  });
  it('calls equal rates the same and clear differences better or worse', () => {
    expect(compareSuccessRates({ jobs: 1000, succeeded: 950 }, { jobs: 1000, succeeded: 948 }).verdict).toBe('same');
    expect(compareSuccessRates({ jobs: 1000, succeeded: 990 }, { jobs: 1000, succeeded: 900 }).verdict).toBe('better');
    expect(compareSuccessRates({ jobs: 1000, succeeded: 800 }, { jobs: 1000, succeeded: 900 }).verdict).toBe('worse');
    expect(compareSuccessRates({ jobs: 100, succeeded: 100 }, { jobs: 100, succeeded: 100 })).toEqual({ verdict: 'same', z: 0 });
  });
  it('matches a hand-computed z', () => {
    // p1 = .9, p2 = .8, pooled = .85, se = sqrt(.85 * .15 * (2/200)) = 0.035707
    expect(compareSuccessRates({ jobs: 200, succeeded: 180 }, { jobs: 200, succeeded: 160 }).z).toBeCloseTo(2.801, 3);
  });
});

describe('mapping helpers', () => {
  it('folds age into priority without crossing legacy priorities', () => {
    expect(pgbossPriority(0, 0)).toBe(0);
    expect(pgbossPriority(0, 3600)).toBeGreaterThan(pgbossPriority(0, 60));
    expect(pgbossPriority(1, 0)).toBeGreaterThan(pgbossPriority(0, 10 * 365 * 86400));
    expect(pgbossPriority(-1, 1e9)).toBeLessThan(pgbossPriority(0, 0));
  });
  it('keeps uuid ids and maps other ids with uuidv5, stably', () => {
    expect(pgbossIdFor('7d444840-9dc0-11d1-b245-5ffdce74fad2')).toBe('7d444840-9dc0-11d1-b245-5ffdce74fad2');
    expect(pgbossIdFor('clx1abc')).toBe(pgbossIdFor('clx1abc'));
    expect(pgbossIdFor('clx1abc')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
  it('backs off exponentially, and longer after a rate limit', () => {
    const retry = { limit: 3, delaySeconds: 2, backoff: true };
    expect([1, 2, 3].map((n) => retryDelaySeconds(retry, n, { kind: 'retryable' }))).toEqual([2, 4, 8]);
    expect(retryDelaySeconds(retry, 1, { kind: 'rate-limited' })).toBe(8);
    expect(retryDelaySeconds(retry, 1, { kind: 'rate-limited', retryAfterSeconds: 30 })).toBe(30);
  });
  it('parses percentages as operators type them', () => {
    expect(['0', '25', '25%', '12.5', '99.99', '100'].map(parsePercent)).toEqual([0, 2500, 2500, 1250, 9999, 10000]);
    for (const bad of ['-1', '101', 'abc', '12.345', '', '1e2']) expect(() => parsePercent(bad)).toThrow(/percent must be a number from 0 to 100/);
  });
});
