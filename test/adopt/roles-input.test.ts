import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/support/errors.js';
import { componentOf, COMPONENTS, roleName, roleSpecs, rolesSql, rolesTarget } from '../../src/adopt/roles.js';
import type { LegacyAdapter } from '../../src/table/adapter.js';
import { repoRoot } from '../helpers/cli.js';

// The least-privilege SQL (RUNBOOK.md §8) read as a security review would: what each role may
// do, that none may do DDL, and that names from a config end up quoted, never as SQL.

const generic = rolesTarget(undefined);
const adapter = { schema: 'jobs', table: 'Eval"Job', jobType: 'evaluation.process', toJob: () => ({ type: 'evaluation.process', payload: {} }), toRow: () => ({}) } satisfies LegacyAdapter;

function privilegesOn(component: string, object: string): string[] {
  const spec = roleSpecs(generic).find((s) => s.component === component)!;
  return spec.grants.filter((g) => g.on === object).flatMap((g) => g.privileges.split(/,\s*(?![^(]*\))/));
}

describe('least-privilege roles', () => {
  it('grant no role DDL, TRUNCATE, REFERENCES, TRIGGER or ALL, and nothing WITH GRANT OPTION', () => {
    const sql = rolesSql(generic);
    const grants = sql.split('\n').filter((line) => line.startsWith('GRANT '));
    expect(grants.length).toBeGreaterThan(20);
    for (const line of grants) {
      expect(line).toMatch(/^GRANT (SELECT|INSERT|UPDATE|DELETE|USAGE|SELECT \(id, start_after\))(, (SELECT|INSERT|UPDATE|DELETE|SELECT \(id, start_after\)))* ON (TABLE|SCHEMA|SEQUENCE) /);
      expect(line).not.toMatch(/WITH GRANT OPTION|\bALL\b|CREATE|TRUNCATE|TRIGGER|REFERENCES/);
    }
  });

  it('let the producer write new jobs only: no update or delete anywhere, no reading other jobs', () => {
    expect(privilegesOn('producer', 'TABLE "public"."Job"')).toEqual(['INSERT']);
    expect(privilegesOn('producer', 'TABLE "RolloutFlag"')).toEqual(['SELECT']);
    expect(privilegesOn('producer', 'TABLE pgboss.job')).toEqual(['INSERT', 'SELECT (id, start_after)']);
    expect(privilegesOn('producer', 'TABLE "RolloutEvent"')).toEqual([]);
  });

  it('keep the dashboard read-only', () => {
    const spec = roleSpecs(generic).find((s) => s.component === 'dashboard')!;
    expect(new Set(spec.grants.map((g) => g.privileges))).toEqual(new Set(['SELECT', 'USAGE']));
  });

  it('give only the operator the rollout controls: flags, plans and the audit log', () => {
    for (const component of COMPONENTS) {
      const writes = privilegesOn(component, 'TABLE "RolloutFlag"').some((p) => p !== 'SELECT') || privilegesOn(component, 'TABLE "RolloutPlanRun"').some((p) => p !== 'SELECT');
      expect(writes, component).toBe(component === 'operator');
    }
  });

  it('name the configured table, quoted, in its schema; and the demo table only for the generic one', () => {
    const sql = rolesSql(rolesTarget(adapter));
    expect(sql).toContain('GRANT INSERT ON TABLE "jobs"."Eval""Job" TO "cutover_producer";');
    expect(sql).toContain('GRANT USAGE ON SCHEMA "jobs" TO "cutover_producer";');
    expect(sql).toContain(`pg_get_serial_sequence('"jobs"."Eval""Job"', a.attname)`);
    expect(sql).not.toContain('DemoDelivery');
    expect(rolesSql(generic)).toContain('GRANT INSERT ON TABLE "DemoDelivery" TO "cutover_legacy_runner";');
  });

  it('take a prefix of plain lower-case letters, digits and underscores only', () => {
    expect(roleName('operator', 'acme_')).toBe('acme_operator');
    expect(roleName('pgboss-worker')).toBe('cutover_pgboss_worker');
    for (const prefix of ['Acme', 'a-b', '1x', 'x"; DROP ROLE postgres; --', 'a'.repeat(42)]) {
      expect(() => roleName('producer', prefix), prefix).toThrow(UsageError);
    }
  });

  it('say whose grants a command needs', () => {
    expect(componentOf('enqueue')).toBe('producer');
    expect(componentOf('worker --engine pgboss')).toBe('pgboss-worker');
    expect(componentOf('rollout history')).toBe('dashboard');
    expect(componentOf('rollback')).toBe('operator');
    expect(componentOf('plan advance')).toBe('operator');
  });
});

describe('RUNBOOK.md §8', () => {
  it('shows the grants cutover init --roles applies, object by object', async () => {
    const specs = roleSpecs(generic);
    const names: Record<string, string> = { producer: 'producer', 'legacy-runner': 'legacy runner', 'pgboss-worker': 'pg-boss worker', operator: 'operator', dashboard: 'dashboard' };
    const objects = [...new Set(specs.flatMap((spec) => spec.grants.map((grant) => grant.on)))];
    const cell = (spec: (typeof specs)[number], on: string) => spec.grants.filter((g) => g.on === on).map((g) => g.privileges).join(', ') || '–';
    const table = [
      `| object | ${specs.map((spec) => names[spec.component]).join(' | ')} |`,
      `|---|${specs.map(() => '---').join('|')}|`,
      ...objects.map((on) => `| \`${on}\` | ${specs.map((spec) => cell(spec, on)).join(' | ')} |`),
    ].join('\n');
    const runbook = await readFile(join(repoRoot, 'RUNBOOK.md'), 'utf8');
    expect(runbook.slice(runbook.indexOf('## 8. Least privilege'))).toContain(table);
  });
});
