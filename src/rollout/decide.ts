import type { Engine } from '../jobs/define.js';
import { DEFAULT_FLAG, type Flag } from '../state/flags.js';
import { bucketFor, routesToPgboss } from './bucket.js';

export type { Flag };

export type RouteReason = 'bucket' | 'override' | 'killswitch' | 'fallback' | 'migrated' | 'rolledback' | 'finalized';

export interface Route {
  engine: Engine;
  bucket: number;
  reason: RouteReason;
  /** The flag that decided, if any: its fallback setting applies when pg-boss refuses the job. */
  flag: Flag | undefined;
}

export interface EnvOverride {
  /** PGBOSS_ROLLOUT_PERCENTAGE, 0..100 */
  percent?: number;
  /** USE_PGBOSS=false forces legacy */
  usePgboss?: boolean;
}

/**
 * The routing decision of DESIGN §6, in its order: kill switch → finalized → environment
 * override → per-type flag → `*` flag → 0 %. Pure: the flags, environment and key are all
 * inputs. A kill switch still beats a finalized type: the way back is never blocked.
 */
export function decideRoute(input: { type: string; key: string; typeFlag?: Flag; defaultFlag?: Flag; env: EnvOverride }): Route {
  const { typeFlag, defaultFlag, env } = input;
  const flag = typeFlag ?? defaultFlag;
  const bucket = bucketFor(flag?.salt ?? '', input.type, input.key);
  if (typeFlag?.killSwitch || defaultFlag?.killSwitch) {
    return { engine: 'LEGACY', bucket, reason: 'killswitch', flag };
  }
  if (typeFlag?.finalized) return { engine: 'PGBOSS', bucket, reason: 'finalized', flag };
  if (env.usePgboss === false) return { engine: 'LEGACY', bucket, reason: 'override', flag };
  if (env.percent !== undefined) {
    const basisPoints = Math.round(env.percent * 100);
    return { engine: routesToPgboss(bucket, basisPoints) ? 'PGBOSS' : 'LEGACY', bucket, reason: 'override', flag };
  }
  const basisPoints = flag?.basisPoints ?? 0;
  return { engine: routesToPgboss(bucket, basisPoints) ? 'PGBOSS' : 'LEGACY', bucket, reason: 'bucket', flag };
}

/** Where new jobs of a type go, as an operator reads it: the share, and what decides it. */
export interface EffectiveRoute {
  jobType: string;
  /** Share of new jobs routed to pg-boss, 0..100. */
  percent: number;
  /** The rule of decideRoute that applies, in words: `kill switch on *`, `its own flag`, … */
  decidedBy: string;
}

/** effectiveRoute, with the rule that decided as a typed field: what code acts on (`decidedBy` is for people). */
export interface RouteDecision {
  route: EffectiveRoute;
  /** decideRoute's reason for the type's new jobs: `killswitch`, `finalized`, `override` (environment) or `bucket` (a flag's share). */
  reason: Extract<RouteReason, 'killswitch' | 'finalized' | 'override' | 'bucket'>;
}

/** decideRoute's order over a whole type instead of one job, and which rule applied. */
export function routeDecision(jobType: string, flags: ReadonlyMap<string, Flag>, env: EnvOverride): RouteDecision {
  const own = flags.get(jobType);
  const fallback = jobType === DEFAULT_FLAG ? undefined : flags.get(DEFAULT_FLAG);
  const decided = (reason: RouteDecision['reason'], percent: number, decidedBy: string): RouteDecision => ({ route: { jobType, percent, decidedBy }, reason });
  if (own?.killSwitch) return decided('killswitch', 0, `kill switch on ${jobType}`);
  if (fallback?.killSwitch) return decided('killswitch', 0, `kill switch on ${DEFAULT_FLAG}`);
  if (own?.finalized) return decided('finalized', 100, `finalized${own.finalized.tracking ? '' : ', tracking rows off'}`);
  if (env.usePgboss === false) return decided('override', 0, 'environment: USE_PGBOSS=false');
  if (env.percent !== undefined) return decided('override', env.percent, `environment: PGBOSS_ROLLOUT_PERCENTAGE=${env.percent}`);
  if (own) return decided('bucket', own.basisPoints / 100, jobType === DEFAULT_FLAG ? `the ${DEFAULT_FLAG} flag` : 'its own flag');
  if (fallback) return decided('bucket', fallback.basisPoints / 100, `the ${DEFAULT_FLAG} flag`);
  return decided('bucket', 0, 'no flag: legacy by default');
}

/** decideRoute's order over a whole type instead of one job: what `status` and `rollout get` show. */
export function effectiveRoute(jobType: string, flags: ReadonlyMap<string, Flag>, env: EnvOverride): EffectiveRoute {
  return routeDecision(jobType, flags, env).route;
}
