import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/cli.js';

// The reduced chaos run (scripts/chaos/run.mjs, what `npm run chaos` runs at full size): about
// 1,000 jobs under kills, a Postgres crash, migrate and rollback in flight. It crashes its
// Postgres on purpose, so it always runs on an embedded server of its own, never on the shared
// test server (DATABASE_URL and TEST_DATABASE_URL are kept from it).

const JOBS = 1000;
const SEED = 20261124;

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

let harness: ChildProcess | undefined;

afterAll(async () => {
  // The harness kills everything it started on SIGTERM; SIGKILL only if it doesn't.
  if (!harness || harness.exitCode !== null || harness.signalCode !== null) return;
  const exited = new Promise((resolve) => harness!.once('exit', resolve));
  harness.kill('SIGTERM');
  const timer = setTimeout(() => harness?.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
});

function runHarness(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  for (const key of ['DATABASE_URL', 'TEST_DATABASE_URL', 'PGBOSS_ROLLOUT_PERCENTAGE', 'USE_PGBOSS']) delete env[key];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'scripts', 'chaos', 'run.mjs'), ...args], { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    harness = child;
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('chaos run (reduced)', () => {
  it('loses no job and explains every extra execution under kills, a Postgres crash, migrate and rollback', async () => {
    const run = await runHarness(['--jobs', String(JOBS), '--seconds', '40', '--drain', '45', '--seed', String(SEED), '--json']);
    const log = run.stderr.split('\n').slice(-40).join('\n');
    let report;
    try {
      report = JSON.parse(run.stdout);
    } catch {
      throw new Error(`the harness printed no JSON report (exit ${run.code}):\n${log}`);
    }

    // The chaos really happened: a run where nothing was done to it would prove nothing.
    expect(report.seed).toBe(SEED);
    expect(report.postgres).toBe('embedded');
    expect(report.chaos.crash).toHaveLength(1);
    expect(report.chaos.kills.legacy, 'legacy runners killed').toBeGreaterThan(0);
    expect(report.chaos.kills.pgboss, 'pg-boss workers killed').toBeGreaterThan(0);
    expect(report.chaos.migrates.started).toBeGreaterThan(0);
    expect(report.chaos.rollbacks.started).toBeGreaterThan(0);
    expect(report.chaos.stallJobs).toBeGreaterThan(0);
    expect(report.logical.byMode.tx, 'jobs enqueued in late-committing transactions').toBeGreaterThan(0);
    expect(report.executions.byEngine.LEGACY).toBeGreaterThan(0);
    expect(report.executions.byEngine.PGBOSS).toBeGreaterThan(0);

    // Every job the producer committed is accounted for.
    expect(report.logical.uncertain).toBe(0);
    expect(report.logical.enqueued).toBe(JOBS + report.chaos.stallJobs);
    expect(report.logical.completed + report.logical.failedForGood + report.logical.lost).toBe(report.logical.enqueued);
    expect(report.logical.failedForGood, 'only chaos.doomed fails for good').toBeGreaterThan(0);

    // The verdict, check by check, each with what the harness saw.
    const failed = (report.checks as Check[]).filter((check) => !check.ok);
    expect(failed, `failed checks:\n${JSON.stringify({ failed, invariants: report.invariants, lost: report.logical.lostSample, unexplained: report.executions.unexplainedSample, pastAttempts: report.chainsPastAttempts.sample }, null, 2)}\n${log}`).toEqual([]);
    expect(report.logical.lost).toBe(0);
    expect(report.executions.unexplained).toBe(0);
    expect(report.executions.extra).toBe(report.executions.byDesign + report.executions.explained.kill + report.executions.explained.stall + report.executions.explained.crash + report.executions.explained.failed);
    expect(report.chainsPastAttempts.count).toBe(0);
    expect(report.reconcile.total).toBe(0);
    expect(report.ok).toBe(true);
    expect(run.code).toBe(0);
  }, 180_000);
});
