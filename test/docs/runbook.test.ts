import { randomBytes } from 'node:crypto';
import { cp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import type { Pool } from '../../src/db/pool.js';
import { createEmptyDatabase } from '../helpers/database.js';
import { repoRoot, runCliInProcess, type CliResult } from '../helpers/cli.js';
import { ownership } from '../helpers/invariants.js';
import { addLegacyJobs, countWhere, jobRows, testPool } from '../helpers/jobs.js';
import { startCli, type CliProcess } from '../helpers/process.js';
import { pollUntil } from '../helpers/wait.js';
import { quietLog } from '../helpers/engines.js';
import { startHeartbeat } from '../../src/state/heartbeat.js';
import { changeFlag } from '../../src/state/flags.js';

const ADOPTING = '## 7. Adopting your table';

/**
 * The `cutover` commands of the runbook's `sh` blocks, in order: those for cutover's generic
 * table, or those of the section on adopting your own table.
 */
async function runbookCommands(part: 'generic' | 'adopting' = 'generic'): Promise<string[]> {
  const text = await readFile(join(repoRoot, 'RUNBOOK.md'), 'utf8');
  const split = text.indexOf(ADOPTING);
  expect(split).toBeGreaterThan(0);
  const section = part === 'generic' ? text.slice(0, split) : text.slice(split);
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1]!);
  return blocks.flatMap((block) => block.split('\n').map((line) => line.trim()).filter((line) => line.startsWith('cutover ')));
}

/** Shell-like splitting of one line: double quotes group words. */
function argv(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!).slice(1);
}

/** The legacy backlog the runbook's database starts with, once `cutover db migrate` has run. */
const BACKLOG = { evaluationsOld: 24, notifications: 12, imports: 4, total: 40 };

interface Check {
  /** Sets the stage the command needs (waits for workers, injects a fault to repair). */
  before?: () => Promise<unknown>;
  /** What the command must have changed, or left alone. */
  after?: (result: CliResult) => Promise<void>;
}

/**
 * What each runbook command must do to a database with real work: a legacy backlog of the
 * demo jobs (old evaluations, new notifications and imports, one of which can never succeed),
 * a pg-boss worker from the start, and a legacy runner once the rollback brought jobs back.
 * Keyed by the runbook's line, as written.
 */
function runbookChecks(pool: Pool, url: string, workers: CliProcess[], heartbeats: (() => Promise<void>)[]): Map<string, Check> {
  const count = (where: string, values: unknown[] = []) => countWhere(pool, where, values);
  const flag = async (jobType: string) => (await pool.query(`SELECT "basisPoints", "killSwitch" FROM "RolloutFlag" WHERE "jobType" = $1`, [jobType])).rows[0];
  const events = async (action: string) => (await pool.query<{ reason: string | null }>(`SELECT reason FROM "RolloutEvent" WHERE action = $1 ORDER BY id`, [action])).rows;
  const planRun = async () => (await pool.query(`SELECT state, "currentStep" FROM "RolloutPlanRun" ORDER BY "startedAt" DESC LIMIT 1`)).rows[0];
  const waitingInPgboss = async () =>
    Number((await pool.query(`SELECT count(*) AS n FROM pgboss.job WHERE name NOT LIKE '%.dlq' AND state IN ('created', 'retry', 'active')`)).rows[0].n);
  let unmappable = '';
  let drifted = '';
  let rows = 0;

  return new Map<string, Check>([
    [
      'cutover db migrate',
      {
        after: async (result) => {
          expect(result.stdout).toMatch(/0001_legacy/);
          expect(Number((await pool.query(`SELECT count(*) AS n FROM "_prisma_migrations" WHERE finished_at IS NOT NULL`)).rows[0].n)).toBeGreaterThanOrEqual(4);
          // The work the rest of the runbook acts on.
          const old = await addLegacyJobs(pool, 'evaluation.process', Array.from({ length: BACKLOG.evaluationsOld }, (_, i) => ({ documentId: `doc-${i}`, agentId: 'agent-1', simulateMs: 1500 })));
          await pool.query(`UPDATE "Job" SET "createdAt" = (now() AT TIME ZONE 'UTC') - interval '2 hours' WHERE id = ANY($1::uuid[])`, [old]);
          await addLegacyJobs(pool, 'notification.send', Array.from({ length: BACKLOG.notifications }, (_, i) => ({ to: `user-${i}`, message: 'hello' })));
          unmappable = (await addLegacyJobs(pool, 'import.article', [{ url: 'ftp://example.com/never' }]))[0]!;
          await addLegacyJobs(pool, 'import.article', Array.from({ length: BACKLOG.imports - 1 }, (_, i) => ({ url: `https://example.com/a/${i}` })));
          workers.push(startCli(['worker', '--engine', 'pgboss', '--concurrency', '2', '--database-url', url]));
        },
      },
    ],
    ['cutover db status', { after: async (result) => expect(result.stdout).toMatch(/0004_backlog_index/) }],
    [
      'cutover status',
      {
        after: async (result) => {
          if (await count(`"routeReason" = 'migrated'`)) {
            // The second time, after the rollback and reconcile --fix.
            expect(result.stdout).toMatch(/Last reconcile: .*, 0 findings/);
          } else {
            expect(result.stdout).toMatch(/evaluation\.process\s+LEGACY\s+PENDING\s+24/);
            expect(result.stdout).toMatch(/none set: every job goes to legacy/);
          }
        },
      },
    ],
    ['cutover rollout get', { after: async (result) => expect(result.stdout).toMatch(/no flags: every job goes to legacy/) }],
    [
      'cutover preflight',
      {
        // Both engines' workers up: the pg-boss worker (its heartbeat and queues), and the team's
        // legacy runner, announced here but kept from claiming so the backlog waits for migrate.
        before: async () => {
          await pollUntil('the pg-boss worker to announce itself', async () => (await pool.query(`SELECT 1 FROM "WorkerHeartbeat" WHERE engine = 'PGBOSS'`)).rowCount);
          heartbeats.push(await startHeartbeat(pool, { workerId: 'team-legacy-runner', engine: 'LEGACY', types: ['evaluation.process', 'import.article', 'notification.send'] }, { log: quietLog }));
        },
        after: async (result) => expect(result.stdout).toMatch(/^preflight passes/m),
      },
    ],
    ['cutover plan show rollout/default.yaml', { after: async (result) => expect(result.stdout).toMatch(/^default \(job type \*\):\n {2}1\. route 1% of new jobs to pg-boss/) }],
    ['cutover plan start rollout/default.yaml', { after: async () => expect(await planRun()).toEqual({ state: 'running', currentStep: 0 }) }],
    ['cutover plan status', { after: async (result) => expect(result.stdout).toMatch(/^default \(\*\) running, step 1\//) }],
    [
      'cutover plan advance --force',
      {
        after: async () => {
          expect(await planRun()).toEqual({ state: 'running', currentStep: 1 });
          expect(await flag('*')).toEqual({ basisPoints: 100, killSwitch: false });
          expect(await events('plan.advance.forced')).toHaveLength(1);
        },
      },
    ],
    [
      'cutover rollout set 1 --reason "first traffic"',
      { after: async () => expect((await events('flag.set')).map((e) => e.reason)).toContain('first traffic') },
    ],
    ['cutover rollout set 5 --type evaluation.process --reason "evaluation jobs first"', { after: async () => expect(await flag('evaluation.process')).toMatchObject({ basisPoints: 500 }) }],
    ['cutover rollout history', { after: async (result) => expect(result.stdout).toMatch(/evaluation jobs first/) }],
    [
      'cutover migrate --dry-run',
      {
        after: async (result) => {
          expect(result.stdout).toMatch(/^would move 40 job\(s\) to pg-boss/);
          expect(await count(`engine = 'PGBOSS'`)).toBe(0);
        },
      },
    ],
    [
      'cutover migrate --type evaluation.process --older-than 1h --batch 500',
      {
        after: async (result) => {
          expect(result.stdout).toMatch(/^moved 24 job\(s\) to pg-boss/);
          expect(await count(`engine = 'PGBOSS' AND "routeReason" = 'migrated'`)).toBe(24);
          expect(await count(`engine = 'PGBOSS' AND type <> 'evaluation.process'`)).toBe(0);
          expect(await count(`engine = 'LEGACY' AND status = 'PENDING'`)).toBe(16);
        },
      },
    ],
    [
      'cutover migrate',
      {
        after: async (result) => {
          expect(result.stdout).toMatch(/^moved 16 job\(s\) to pg-boss/);
          expect(await count(`engine = 'LEGACY'`)).toBe(0);
          expect(await ownership(pool)).toMatchObject({ rows: 40, pgbossRows: 40, lost: 0, inBoth: 0, orphans: 0 });
        },
      },
    ],
    ['cutover reconcile', { after: async (result) => expect(result.stdout).toMatch(/clean: nothing lost, nothing disagrees/) }],
    [
      'cutover reconcile --since 1h --json',
      {
        after: async (result) => {
          expect(JSON.parse(result.stdout)).toMatchObject({ total: 0, findings: { lost: { count: 0 }, double: { count: 0 } } });
          expect(Number((await pool.query(`SELECT count(*) AS n FROM "ReconcileRun"`)).rows[0].n)).toBe(2);
        },
      },
    ],
    [
      'cutover dlq list',
      {
        // The ftp import can never succeed: pg-boss dead-letters it.
        before: () => pollUntil('the unmappable import to be dead-lettered', async () => (await jobRows(pool, 'id = $1', [unmappable]))[0]?.status === 'FAILED'),
        after: async (result) => expect(result.stdout).toContain(unmappable),
      },
    ],
    [
      'cutover rollout kill --reason "pg-boss incident"',
      {
        before: () => pollUntil('pg-boss to have completed some jobs', async () => (await count(`engine = 'PGBOSS' AND status = 'COMPLETED'`)) >= 3),
        after: async () => {
          expect(await flag('*')).toMatchObject({ killSwitch: true });
          expect((await events('flag.kill')).map((e) => e.reason)).toEqual(['pg-boss incident']);
        },
      },
    ],
    [
      'cutover rollback --dry-run',
      {
        before: async () => (rows = await count(`"routeReason" = 'rolledback'`)),
        after: async (result) => {
          expect(result.stdout).toMatch(/^would move \d+ unstarted job\(s\) back to legacy/);
          expect(await count(`"routeReason" = 'rolledback'`)).toBe(rows);
          expect(await events('rollback')).toEqual([]);
        },
      },
    ],
    [
      'cutover rollback --drain --timeout 300',
      {
        after: async (result) => {
          expect(result.stdout).toMatch(/drained: no pg-boss job is running/);
          expect(await waitingInPgboss()).toBe(0);
          expect(await events('rollback')).toHaveLength(1);
          // Whatever pg-boss had not finished is legacy's now, rolled back or handed back unrun.
          expect(await count(`engine = 'PGBOSS' AND status NOT IN ('COMPLETED', 'FAILED')`)).toBe(0);
          const back = await count(`engine = 'LEGACY'`);
          expect(back, 'jobs brought back to legacy').toBeGreaterThan(0);
          expect(await count(`engine = 'LEGACY' AND status = 'PENDING' AND "routeReason" IN ('rolledback', 'handedback')`)).toBe(back);
          expect(result.stdout).toMatch(new RegExp(`^moved ${await count(`"routeReason" = 'rolledback'`)} unstarted job\\(s\\) back to legacy`));
          workers.push(startCli(['worker', '--engine', 'legacy', '--concurrency', '8', '--poll-ms', '50', '--database-url', url]));
        },
      },
    ],
    [
      'cutover reconcile --fix',
      {
        // A mirror row that fell behind: pg-boss completed the job, the row still says RUNNING.
        before: async () => {
          const { rows: picked } = await pool.query<{ id: string }>(`SELECT id FROM "Job" WHERE engine = 'PGBOSS' AND status = 'COMPLETED' LIMIT 1`);
          drifted = picked[0]!.id;
          await pool.query(`UPDATE "Job" SET status = 'RUNNING', "updatedAt" = (now() AT TIME ZONE 'UTC') - interval '1 hour' WHERE id = $1`, [drifted]);
        },
        after: async (result) => {
          expect(result.stdout).toMatch(/Fixed: lost 0, orphan 0, drift 1/);
          expect((await jobRows(pool, 'id = $1', [drifted]))[0]?.status).toBe('COMPLETED');
          expect(await events('reconcile.fix.drift')).toHaveLength(1);
        },
      },
    ],
    ['cutover rollout unkill', { after: async () => expect(await flag('*')).toMatchObject({ killSwitch: false }) }],
    [
      'cutover rollout set 1 --reason "retry after incident"',
      { after: async () => expect((await events('flag.set')).map((e) => e.reason)).toContain('retry after incident') },
    ],
    [
      'cutover plan abort',
      {
        after: async () => {
          expect(await planRun()).toMatchObject({ state: 'aborted' });
          expect(await flag('*')).toMatchObject({ killSwitch: true });
        },
      },
    ],
    [
      'cutover migrate --type notification.send',
      {
        // §6 starts from a type that held 100 %: the incident is over, notifications went all the way.
        before: async () => {
          await changeFlag(pool, { jobType: '*', killSwitch: false }, { actor: 'test', action: 'flag.unkill' });
          await changeFlag(pool, { jobType: 'notification.send', basisPoints: 10_000 }, { actor: 'test', action: 'flag.set' });
        },
        after: async () => expect(await count(`type = 'notification.send' AND engine = 'LEGACY' AND status = 'PENDING'`)).toBe(0),
      },
    ],
    [
      'cutover drain-report --type notification.send',
      {
        before: () => pollUntil('the legacy runner to finish its notifications', async () => (await count(`type = 'notification.send' AND engine = 'LEGACY' AND status IN ('PENDING', 'RUNNING')`)) === 0),
        after: async (result) => expect(result.stdout).toMatch(/^drained: /m),
      },
    ],
    [
      'cutover finalize --type notification.send --tracking keep',
      { after: async () => expect((await pool.query(`SELECT tracking FROM "RolloutFinal" WHERE "jobType" = 'notification.send'`)).rows).toEqual([{ tracking: true }]) },
    ],
    ['cutover archive --type notification.send --older-than 30d', { after: async (result) => expect(result.stdout).toMatch(/^moved 0 finished row\(s\)/) }],
  ]);
}

describe('RUNBOOK.md', () => {
  it('has commands to run', async () => {
    expect((await runbookCommands()).length).toBeGreaterThan(15);
  });

  it('every command in its sh blocks runs and succeeds on a database with real work, and does what the runbook says', async () => {
    const database = await createEmptyDatabase();
    const pool = testPool(database.url);
    const workers: CliProcess[] = [];
    const heartbeats: (() => Promise<void>)[] = [];
    try {
      const checks = runbookChecks(pool, database.url, workers, heartbeats);
      const used = new Set<string>();
      for (const line of await runbookCommands()) {
        const check = checks.get(line);
        if (check) used.add(line);
        await check?.before?.();
        const result = await runCliInProcess([...argv(line), '--yes', '--database-url', database.url]);
        expect(result.code, `${line}\n${result.stderr}`).toBe(0);
        await check?.after?.(result);
      }
      // A check whose command left the runbook would silently stop running: say which.
      expect([...checks.keys()].filter((line) => !used.has(line)), 'checks for commands no longer in RUNBOOK.md').toEqual([]);

      // The legacy runner finishes what came back; every job ran, and exactly once.
      await pollUntil('every job to finish', async () => (await countWhere(pool, `status IN ('PENDING', 'RUNNING')`)) === 0, { timeoutMs: 90_000, intervalMs: 250 });
      for (const worker of workers) worker.kill('SIGTERM');
      expect((await Promise.all(workers.map((w) => w.exited))).map((e) => e.code)).toEqual(workers.map(() => 0));
      expect(await countWhere(pool, `status = 'COMPLETED'`)).toBe(BACKLOG.total - 1);
      expect(await countWhere(pool, `status = 'FAILED' AND type = 'import.article'`)).toBe(1);
      const deliveries = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM "DemoDelivery" GROUP BY "jobId"`);
      expect(deliveries.rows.map((row) => row.n)).toEqual(Array.from({ length: BACKLOG.notifications }, () => '1'));
      expect(await ownership(pool)).toMatchObject({ rows: BACKLOG.total, lost: 0, inBoth: 0, orphans: 0 });
    } finally {
      for (const worker of workers) worker.kill('SIGKILL');
      for (const stop of heartbeats) await stop();
      await pool.end();
      await database.drop();
    }
  }, 240_000);

  it('every command of "Adopting your table" runs and succeeds on the example table, from its directory', async () => {
    const commands = await runbookCommands('adopting');
    expect(commands).toContain('cutover init');
    const adopted = await createEmptyDatabase();
    const example = join(repoRoot, 'examples', 'evaluation-table');
    // Inside the repository, so the example config's `import 'cutover'` resolves to this package.
    const project = join(repoRoot, '.test-tmp', `runbook-${randomBytes(4).toString('hex')}`);
    try {
      await cp(example, project, { recursive: true });
      const client = new pg.Client({ connectionString: adopted.url });
      await client.connect();
      try {
        await client.query(await readFile(join(example, 'schema.sql'), 'utf8'));
        await client.query(`INSERT INTO "Job" (id, "evaluationId", "updatedAt") VALUES ('ckrunbook0001', 'ev-1', now()), ('ckrunbook0002', 'ev-2', now())`);
      } finally {
        await client.end();
      }
      for (const line of commands) {
        const result = await runCliInProcess([...argv(line), '--yes', '--database-url', adopted.url], { cwd: project });
        expect(result.code, `${line}\n${result.stderr}`).toBe(0);
      }
    } finally {
      await rm(project, { recursive: true, force: true });
      await adopted.drop();
    }
  });
});
