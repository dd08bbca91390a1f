import { describe, expect, it } from 'vitest';
import { BUCKETS, bucketFor, routesToPgboss } from '../../src/rollout/bucket.js';
import { decideRoute, type Flag } from '../../src/rollout/decide.js';

const keys = Array.from({ length: 100_000 }, (_, i) => `job-${i}`);

function shareAt(basisPoints: number): number {
  let pgboss = 0;
  for (const key of keys) if (routesToPgboss(bucketFor('', 'evaluation.process', key), basisPoints)) pgboss += 1;
  return (pgboss / keys.length) * 100;
}

describe('sticky bucketing', () => {
  it('is deterministic and in range', () => {
    expect(bucketFor('s', 't', 'k')).toBe(bucketFor('s', 't', 'k'));
    for (const key of keys.slice(0, 1000)) {
      const bucket = bucketFor('', 't', key);
      expect(bucket).toBeGreaterThanOrEqual(0);
      expect(bucket).toBeLessThan(BUCKETS);
    }
    expect(bucketFor('', 't', 'ünïcødé')).toBe(bucketFor('', 't', 'ünïcødé'));
    expect(bucketFor('', 't', 'ünïcødé')).not.toBe(bucketFor('', 't', 'unicode'));
  });

  it.each([0, 1, 10, 25, 50, 75, 100])('routes %i %% of 100k keys to pg-boss, within 1 point', (percent) => {
    expect(Math.abs(shareAt(percent * 100) - percent)).toBeLessThanOrEqual(1);
  });

  it('only moves keys legacy → pg-boss when stepping 10 → 25 → 50, and back when lowering', () => {
    const steps = [1000, 2500, 5000];
    const routed = steps.map((bp) => keys.map((key) => routesToPgboss(bucketFor('', 'x', key), bp)));
    for (let step = 1; step < steps.length; step++) {
      const before = routed[step - 1]!;
      const after = routed[step]!;
      expect(before.some((onPgboss, i) => onPgboss && !after[i])).toBe(false);
      expect(after.filter(Boolean).length).toBeGreaterThan(before.filter(Boolean).length);
    }
  });

  it('spreads differently per salt and per type', () => {
    const a = keys.slice(0, 2000).map((k) => bucketFor('a', 't', k));
    const b = keys.slice(0, 2000).map((k) => bucketFor('b', 't', k));
    const c = keys.slice(0, 2000).map((k) => bucketFor('a', 'u', k));
    expect(a.filter((bucket, i) => bucket === b[i]).length).toBeLessThan(20);
    expect(a.filter((bucket, i) => bucket === c[i]).length).toBeLessThan(20);
  });
});

describe('routing decision order', () => {
  const flag = (over: Partial<Flag>): Flag => ({ jobType: 't', basisPoints: 10_000, killSwitch: false, salt: '', fallbackToLegacy: true, ...over });

  it('kill switch beats everything, on the type or on *', () => {
    expect(decideRoute({ type: 't', key: 'k', typeFlag: flag({ killSwitch: true }), env: { percent: 100 } })).toMatchObject({ engine: 'LEGACY', reason: 'killswitch' });
    expect(decideRoute({ type: 't', key: 'k', typeFlag: flag({}), defaultFlag: flag({ jobType: '*', killSwitch: true }), env: {} })).toMatchObject({ engine: 'LEGACY', reason: 'killswitch' });
  });

  it('environment override beats the flags', () => {
    expect(decideRoute({ type: 't', key: 'k', typeFlag: flag({}), env: { usePgboss: false } })).toMatchObject({ engine: 'LEGACY', reason: 'override' });
    expect(decideRoute({ type: 't', key: 'k', typeFlag: flag({}), env: { percent: 0 } })).toMatchObject({ engine: 'LEGACY', reason: 'override' });
    expect(decideRoute({ type: 't', key: 'k', env: { percent: 100 } })).toMatchObject({ engine: 'PGBOSS', reason: 'override' });
  });

  it('per-type flag beats *, and no flag means legacy', () => {
    expect(decideRoute({ type: 't', key: 'k', typeFlag: flag({ basisPoints: 0 }), defaultFlag: flag({ jobType: '*' }), env: {} })).toMatchObject({ engine: 'LEGACY', reason: 'bucket' });
    expect(decideRoute({ type: 't', key: 'k', defaultFlag: flag({ jobType: '*' }), env: {} })).toMatchObject({ engine: 'PGBOSS', reason: 'bucket' });
    expect(decideRoute({ type: 't', key: 'k', env: {} })).toMatchObject({ engine: 'LEGACY', reason: 'bucket' });
  });
});
