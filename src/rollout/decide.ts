import type { Engine } from '../jobs/define.js';
import { bucketFor, routesToPgboss } from './bucket.js';

export interface Flag {
  jobType: string;
  basisPoints: number;
  killSwitch: boolean;
  salt: string;
  fallbackToLegacy: boolean;
}

export type RouteReason = 'bucket' | 'override' | 'killswitch' | 'fallback' | 'migrated' | 'rolledback';

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
 * The routing decision of DESIGN §6, in its order: kill switch → environment override →
 * per-type flag → `*` flag → 0 %. Pure: the flags, environment and key are all inputs.
 */
export function decideRoute(input: { type: string; key: string; typeFlag?: Flag; defaultFlag?: Flag; env: EnvOverride }): Route {
  const { typeFlag, defaultFlag, env } = input;
  const flag = typeFlag ?? defaultFlag;
  const bucket = bucketFor(flag?.salt ?? '', input.type, input.key);
  if (typeFlag?.killSwitch || defaultFlag?.killSwitch) {
    return { engine: 'LEGACY', bucket, reason: 'killswitch', flag };
  }
  if (env.usePgboss === false) return { engine: 'LEGACY', bucket, reason: 'override', flag };
  if (env.percent !== undefined) {
    const basisPoints = Math.round(env.percent * 100);
    return { engine: routesToPgboss(bucket, basisPoints) ? 'PGBOSS' : 'LEGACY', bucket, reason: 'override', flag };
  }
  const basisPoints = flag?.basisPoints ?? 0;
  return { engine: routesToPgboss(bucket, basisPoints) ? 'PGBOSS' : 'LEGACY', bucket, reason: 'bucket', flag };
}
