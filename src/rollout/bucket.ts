import murmurhash from 'murmurhash';

/** Routing resolution: basis points, so 0.01 % steps are possible. */
export const BUCKETS = 10_000;

const utf8 = new TextEncoder();

/**
 * Sticky bucket of a job: MurmurHash3 (32-bit) of `salt:type:key`, mod 10000. MurmurHash3 is
 * fast, well distributed on short similar keys (ids that differ in a few characters), and the
 * same function everywhere, so any process, in any language, routes a key the same way.
 * Bytes, not the string, are hashed: the package hashes strings as ASCII only.
 */
export function bucketFor(salt: string, type: string, key: string): number {
  return murmurhash.v3(utf8.encode(`${salt}:${type}:${key}`)) % BUCKETS;
}

/**
 * pg-boss iff bucket < basisPoints: raising the percentage only adds buckets to pg-boss,
 * lowering only removes them, so no key flips back and forth while the flag moves one way.
 */
export function routesToPgboss(bucket: number, basisPoints: number): boolean {
  return bucket < basisPoints;
}
