export type Verdict = 'better' | 'same' | 'worse' | 'not enough data';

/**
 * Two-proportion z-test on success rates, pg-boss against legacy. Below `minSample` jobs on
 * either side there is no verdict, so a handful of jobs never decides anything. 1.96 is the
 * two-sided 5 % level.
 */
export function compareSuccessRates(
  pgboss: { jobs: number; succeeded: number },
  legacy: { jobs: number; succeeded: number },
  minSample = 30,
): { verdict: Verdict; z: number | null } {
  if (pgboss.jobs < minSample || legacy.jobs < minSample) return { verdict: 'not enough data', z: null };
  const p1 = pgboss.succeeded / pgboss.jobs;
  const p2 = legacy.succeeded / legacy.jobs;
  const pooled = (pgboss.succeeded + legacy.succeeded) / (pgboss.jobs + legacy.jobs);
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / pgboss.jobs + 1 / legacy.jobs));
  if (se === 0) return { verdict: 'same', z: 0 };
  const z = (p1 - p2) / se;
  return { verdict: Math.abs(z) < 1.96 ? 'same' : z > 0 ? 'better' : 'worse', z: Math.round(z * 1000) / 1000 };
}
