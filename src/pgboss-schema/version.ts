// Relies on (pg-boss 12.38): the relation pgboss.version and its one column `version` (the
// schema version pg-boss installed or last migrated to, stored as text in an integer column,
// one row); the `pgboss.schema` field of pg-boss's package.json (the schema version that
// release installs; pg-boss's own CLI and Contractor read the same field); and that pg-boss's
// start migrates an older schema forward to that version and leaves a newer one untouched.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Queryable } from '../db/pool.js';
import { UnsupportedPgbossVersionError } from '../support/errors.js';
import { PGBOSS_SCHEMA } from './schema.js';

/**
 * What this cutover was tested against (test/pgboss-schema/contract.test.ts): the pg-boss
 * package releases (a tilde range: one minor's patches; package.json pins the same range) and
 * the schema versions in pgboss.version those releases run on. Every statement of this room
 * relies on both.
 */
export const SUPPORTED_PGBOSS: SupportedPgboss = {
  packageRange: '~12.38.0',
  schemaVersions: [46],
};

export interface SupportedPgboss {
  /** A tilde range of pg-boss releases: `~12.38.0` is 12.38.0 and later patches of 12.38. */
  packageRange: string;
  /** pgboss.version values. */
  schemaVersions: readonly number[];
}

/** The schema version installed in the database, null when pg-boss is not installed. */
export const selectSchemaVersion = `SELECT version FROM ${PGBOSS_SCHEMA}.version`;

/** Reads pgboss.version (null: pg-boss not installed here). */
export async function readSchemaVersion(db: Queryable): Promise<number | null> {
  // Two statements: a relation that does not exist fails a statement when it is parsed, whatever its WHERE says.
  const { rows: present } = await db.query<{ present: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS present`, [`${PGBOSS_SCHEMA}.version`]);
  if (!present[0]?.present) return null;
  const { rows } = await db.query<{ version: string | number | null }>(selectSchemaVersion);
  const version = rows[0]?.version;
  return version === undefined || version === null ? null : Number(version);
}

/** The installed pg-boss package: its release and the schema version it installs. */
export function installedPgboss(): { version: string; schema: number } {
  const entry = createRequire(import.meta.url).resolve('pg-boss');
  let dir = dirname(entry);
  // dist/index.js → the package root, wherever the package manager put it.
  for (let i = 0; i < 3; i += 1, dir = dirname(dir)) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string; pgboss?: { schema?: number } };
      if (manifest.name === 'pg-boss' && manifest.version && manifest.pgboss?.schema) return { version: manifest.version, schema: manifest.pgboss.schema };
    } catch {
      // not the package root yet
    }
  }
  throw new UnsupportedPgbossVersionError({ ...supportedFields(SUPPORTED_PGBOSS), packageVersion: null, schemaVersion: null, reason: 'cannot read the version of the installed pg-boss' });
}

const supportedFields = (supported: SupportedPgboss) => ({ supportedPackageRange: supported.packageRange, supportedSchemaVersions: supported.schemaVersions });

/** Whether `version` (x.y.z) lies in a tilde range `~x.y.z`: same major and minor, patch at least z. */
export function inTildeRange(version: string, range: string): boolean {
  const parse = (text: string) => /^(\d+)\.(\d+)\.(\d+)$/.exec(text)?.slice(1).map(Number);
  const found = parse(version);
  const floor = parse(range.replace(/^~/, ''));
  if (!found || !floor || !range.startsWith('~')) return false;
  return found[0] === floor[0] && found[1] === floor[1] && found[2]! >= floor[2]!;
}

/**
 * Refuses a pg-boss cutover was not tested against: the package release (`packageVersion`)
 * outside SUPPORTED_PGBOSS.packageRange, or a database schema (`schemaVersion`, null when
 * pg-boss is not installed yet, which its start installs) outside SUPPORTED_PGBOSS.schemaVersions.
 * Both are arguments, so a test can ask about a release that is not installed.
 */
export function assertSupportedPgboss(found: { packageVersion: string; schemaVersion: number | null }, supported: SupportedPgboss = SUPPORTED_PGBOSS): void {
  const packageOk = inTildeRange(found.packageVersion, supported.packageRange);
  const schemaOk = found.schemaVersion === null || supported.schemaVersions.includes(found.schemaVersion);
  if (packageOk && schemaOk) return;
  throw new UnsupportedPgbossVersionError({
    ...supportedFields(supported),
    packageVersion: found.packageVersion,
    schemaVersion: found.schemaVersion,
    reason: [
      packageOk ? null : `pg-boss ${found.packageVersion} is installed, this cutover supports pg-boss ${supported.packageRange}`,
      schemaOk ? null : `the database's pg-boss schema (${PGBOSS_SCHEMA}.version) is ${found.schemaVersion}, this cutover supports schema version ${supported.schemaVersions.join(', ')}`,
    ]
      .filter(Boolean)
      .join('; '),
  });
}
