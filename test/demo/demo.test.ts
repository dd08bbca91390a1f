import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { runCli } from '../helpers/cli.js';

let database: TestDatabase;
beforeAll(async () => (database = await createTestDatabase()));
afterAll(async () => database.drop());

describe('cutover demo', () => {
  it('tells the whole story, exits 0, and its numbers agree with cutover reconcile', async () => {
    const demo = await runCli(['demo', '--json', '--yes', '--backlog', '300', '--database-url', database.url], { env: { CUTOVER_FLAG_TTL_MS: '5000' } });
    expect(demo.code, demo.stderr).toBe(0);
    const summary = JSON.parse(demo.stdout);
    expect(summary.passes.map((p: { state: string }) => p.state)).toEqual(['completed', 'aborted']);
    expect(summary.migrate.quarantined).toBe(2);
    expect(summary.reconcile.findings.lost.count).toBe(0);
    expect(summary.reconcile.findings.double.count).toBe(0);
    expect(demo.stderr).toMatch(/Second pass: pg-boss is broken/);

    const reconcile = await runCli(['reconcile', '--json', '--grace', '0', '--database-url', database.url]);
    expect(reconcile.code, reconcile.stderr).toBe(0);
    expect(JSON.parse(reconcile.stdout).comparison).toEqual(summary.reconcile.comparison);
  }, 180_000);

  it('refuses to empty a database it was pointed at without --yes', async () => {
    const refused = await runCli(['demo', '--database-url', database.url]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/pass --yes/);
  });
});
