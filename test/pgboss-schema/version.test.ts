// The pg-boss versions cutover supports are checked before pg-boss starts: a database whose
// pg-boss schema is outside the list, or an installed release outside the range, is refused
// with an error naming what was found and what is supported.
import { describe, expect, it } from 'vitest';
import { startBoss } from '../../src/pgboss/boss.js';
import { assertSupportedPgboss, inTildeRange, installedPgboss, readSchemaVersion, SUPPORTED_PGBOSS } from '../../src/pgboss-schema/version.js';
import { UnsupportedPgbossVersionError } from '../../src/support/errors.js';
import { quietLog } from '../helpers/engines.js';
import { useDatabaseFixture } from '../helpers/fixture.js';

const fixture = useDatabaseFixture();

describe('supported pg-boss versions', () => {
  it('lists the installed release and the schema it installs', () => {
    const installed = installedPgboss();
    expect(inTildeRange(installed.version, SUPPORTED_PGBOSS.packageRange)).toBe(true);
    expect(SUPPORTED_PGBOSS.schemaVersions).toContain(installed.schema);
  });

  it('starts pg-boss on a supported schema, and refuses to start on a schema version outside the list', async () => {
    const { pool, database } = fixture;
    const boss = await startBoss({ databaseUrl: database.url, log: quietLog, max: 2 });
    await boss.stop({ graceful: false });
    expect(SUPPORTED_PGBOSS.schemaVersions).toContain(await readSchemaVersion(pool));

    await pool.query(`UPDATE pgboss.version SET version = 999`);
    const refused = startBoss({ databaseUrl: database.url, log: quietLog, max: 2 });
    await expect(refused).rejects.toBeInstanceOf(UnsupportedPgbossVersionError);
    await expect(refused).rejects.toMatchObject({
      schemaVersion: 999,
      packageVersion: installedPgboss().version,
      supportedSchemaVersions: SUPPORTED_PGBOSS.schemaVersions,
      message: expect.stringMatching(/schema \(pgboss\.version\) is 999, this cutover supports schema version 46/),
    });
    // Refused before pg-boss started: it did not touch its schema either.
    expect(await readSchemaVersion(pool)).toBe(999);
  });

  it('refuses a pg-boss release outside the range, naming both', () => {
    for (const packageVersion of ['12.39.0', '13.0.0', '12.37.9', '12.38']) {
      expect(() => assertSupportedPgboss({ packageVersion, schemaVersion: 46 })).toThrow(UnsupportedPgbossVersionError);
    }
    const refusal = (() => {
      try {
        assertSupportedPgboss({ packageVersion: '12.39.0', schemaVersion: 47 });
        return undefined;
      } catch (error) {
        return error;
      }
    })();
    expect(refusal).toBeInstanceOf(UnsupportedPgbossVersionError);
    expect(refusal).toMatchObject({ packageVersion: '12.39.0', schemaVersion: 47, supportedPackageRange: '~12.38.0' });
    expect((refusal as Error).message).toMatch(/pg-boss 12\.39\.0 is installed, this cutover supports pg-boss ~12\.38\.0/);
    expect((refusal as Error).message).toMatch(/is 47, this cutover supports schema version 46/);
    expect(() => assertSupportedPgboss({ packageVersion: '12.38.7', schemaVersion: 46 })).not.toThrow();
    expect(() => assertSupportedPgboss({ packageVersion: '12.38.0', schemaVersion: null })).not.toThrow();
  });
});
