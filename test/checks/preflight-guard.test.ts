// An adoption guard written by an older cutover knows cutover's writes only by the session
// setting `cutover.writer`, which cutover no longer sends: preflight fails on it and says how
// to replace it; it warns on one that refuses updates but not deletes, and passes on the guard
// `cutover init` writes now.
import { describe, expect, it } from 'vitest';
import type { Check } from '../../src/checks/preflight.js';
import { useDatabaseFixture } from '../helpers/fixture.js';
import { fixtureRegistry } from '../helpers/jobs.js';
import { runCliInProcess } from '../helpers/cli.js';

const fixture = useDatabaseFixture();

async function guardCheck(): Promise<Check | undefined> {
  const result = await runCliInProcess(['preflight', '--json', '--type', 'test.noop', '--registry', fixtureRegistry, '--database-url', fixture.database.url]);
  return (JSON.parse(result.stdout) as { checks: Check[] }).checks.find((check) => check.check === 'adoption guard');
}

const guard = (recognises: string) => `CREATE FUNCTION job_guard() RETURNS trigger LANGUAGE plpgsql AS $g$
  BEGIN
    IF OLD."engine" = 'PGBOSS' AND ${recognises} THEN
      RAISE EXCEPTION 'cutover guard: row % belongs to pg-boss', OLD.id;
    END IF;
    RETURN NEW;
  END $g$`;

describe('preflight and the adoption guard', () => {
  it('passes with no guard, fails on one that knows cutover only by cutover.writer, warns on one that lets deletes through, passes on the current one', async () => {
    expect(await guardCheck()).toMatchObject({ status: 'pass', value: 'none on this table' });

    await fixture.pool.query(guard(`current_setting('cutover.writer', true) IS DISTINCT FROM 'on'`));
    await fixture.pool.query(`CREATE TRIGGER job_guard BEFORE UPDATE ON "Job" FOR EACH ROW EXECUTE FUNCTION job_guard()`);
    expect(await guardCheck()).toMatchObject({ status: 'fail', advice: expect.stringContaining('cutover init') });

    await fixture.pool.query(`DROP TRIGGER job_guard ON "Job"; DROP FUNCTION job_guard()`);
    await fixture.pool.query(guard(`current_setting('cutover.writer', true) IS DISTINCT FROM 'on' AND current_setting('application_name') !~ '^cutover(-|$)'`));
    await fixture.pool.query(`CREATE TRIGGER job_guard BEFORE UPDATE ON "Job" FOR EACH ROW EXECUTE FUNCTION job_guard()`);
    // Updates only: a runner whose success deletes the row still gets past it.
    expect(await guardCheck()).toMatchObject({ status: 'warn', value: expect.stringContaining('not its deletes'), advice: expect.stringContaining('cutover init') });

    await fixture.pool.query(`DROP TRIGGER job_guard ON "Job"`);
    await fixture.pool.query(`CREATE TRIGGER job_guard BEFORE UPDATE OR DELETE ON "Job" FOR EACH ROW EXECUTE FUNCTION job_guard()`);
    expect(await guardCheck()).toMatchObject({ status: 'pass' });
  });
});
