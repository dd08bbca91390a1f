// The workers' grants on a table whose successes leave it (delayed_job, onSuccess: 'archive'):
// both engines delete the row and insert it into the archive, so both may; on any other table
// they may do neither.
import { describe, expect, it } from 'vitest';
import { roleSpecs, rolesTarget } from '../../src/adopt/roles.js';
import type { LegacyAdapter } from '../../src/table/adapter.js';

const adapter = (onSuccess?: 'keep' | 'archive'): LegacyAdapter => ({
  table: 'delayed_jobs',
  jobType: { column: 'queue' },
  ...(onSuccess ? { onSuccess } : {}),
  toJob: () => ({ type: 'mailers', payload: {} }),
  toRow: () => ({}),
});

function privileges(target: ReturnType<typeof rolesTarget>, component: string, on: string): string[] {
  const spec = roleSpecs(target).find((s) => s.component === component)!;
  return spec.grants.filter((g) => g.on === on).flatMap((g) => g.privileges.split(/,\s*/));
}

describe("workers' grants when a success leaves the table", () => {
  it('both engines may delete from the table and insert into the archive', () => {
    const target = rolesTarget(adapter('archive'));
    for (const component of ['legacy-runner', 'pgboss-worker']) {
      expect(privileges(target, component, 'TABLE "public"."delayed_jobs"'), component).toContain('DELETE');
      expect(privileges(target, component, 'TABLE "public"."delayed_jobs_cutover_archive"'), component).toEqual(['INSERT']);
    }
  });

  it('on a table whose successes stay, neither may', () => {
    const target = rolesTarget(adapter());
    for (const component of ['legacy-runner', 'pgboss-worker']) {
      expect(privileges(target, component, 'TABLE "public"."delayed_jobs"'), component).not.toContain('DELETE');
      expect(privileges(target, component, 'TABLE "public"."delayed_jobs_cutover_archive"'), component).toEqual([]);
    }
  });
});
