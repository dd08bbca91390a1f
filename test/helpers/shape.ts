// The flow every adopted example shape goes through end to end (DESIGN §3b): preflight, jobs on
// both engines (one that fails once, one that fails for good, on each), the backlog migrated at
// 50 %, both workers until every due job is done, each job run as often as its retries allow,
// reconcile clean, rollback and the drain report; and the team's own runner, unpatched then
// patched, beside a pg-boss worker. A shape's test gives what differs: its jobs, its "done", its
// own columns and queries, checked at the steps where they matter.
import pg from 'pg';
import { expect } from 'vitest';
import type { EnqueueResult } from '../../src/rollout/manager.js';
import { setPercent } from './engines.js';
import { stopWorkers, type Example } from './example.js';
import { pollUntil } from './wait.js';

/** The four jobs with a history: fails once then succeeds, fails for good, on each engine. */
export interface HistoryJobs {
  onceBoss: EnqueueResult;
  deadBoss: EnqueueResult;
  onceLegacy: EnqueueResult;
  deadLegacy: EnqueueResult;
}

export interface ShapeFlow {
  type: string;
  /** A job's payload: `failTimes` runs fail before it succeeds (none: it succeeds at once). */
  payload(name: string, failTimes?: number): object;
  /** How many jobs the example's seed left waiting and due (each runs once). */
  dueBacklog: number;
  /** How many jobs are enqueued at 50 % beside the backlog. */
  batch: number;
  /** How many runs a job that fails for good makes. @defaultValue 3 */
  deadRuns?: number;
  /** Runs per job id, by engine, as the example's jobs record them. */
  runsPerJob(): Promise<Map<string, unknown[]>>;
  /** True once every due job is done, as the shape can tell. */
  allDone(): Promise<boolean>;
  /** After the batch is enqueued at 50 % (the pg-boss jobs with a history are in too). */
  enqueued?(sent: EnqueueResult[], boss: Pick<HistoryJobs, 'onceBoss' | 'deadBoss'>): Promise<void>;
  /** After `cutover migrate` (its JSON). */
  migrated?(report: unknown): Promise<void>;
  /** After the runs, before reconcile: the shape's own columns and queries. */
  ran?(jobs: HistoryJobs & { sent: EnqueueResult[] }): Promise<void>;
  /** Just before rollback. */
  rollingBack?(): Promise<void>;
  /** After `cutover rollback` (its JSON). */
  rolledBack?(report: unknown): Promise<void>;
  /** The drain report's JSON. */
  drained?(report: { types: unknown[] }): Promise<void>;
}

/** Routes everything from now on to `percent`. */
export async function atPercent(example: Example, percent: number): Promise<void> {
  await setPercent(example.pool, percent);
  example.producer.flags.invalidate();
}

/** Before any worker is started, only the live-worker checks may fail. */
export async function expectPreflightClean(example: Example, type: string): Promise<void> {
  const preflight = await example.cli('preflight', '--json', '--type', type);
  const failing = (JSON.parse(preflight.stdout) as { checks: { check: string; status: string }[] }).checks.filter((check) => check.status === 'fail');
  expect(failing.map((check) => check.check).filter((name) => !/runner|worker/.test(name)), preflight.stdout).toEqual([]);
}

async function json(example: Example, ...args: string[]): Promise<unknown> {
  const run = await example.cli(...args, '--json');
  expect(run.code, run.stderr || run.stdout).toBe(0);
  return JSON.parse(run.stdout) as unknown;
}

/** The whole flow, the shape's differences at its steps. Returns the jobs it made. */
export async function runShapeFlow(example: Example, shape: ShapeFlow): Promise<HistoryJobs & { sent: EnqueueResult[] }> {
  const { producer } = example;
  const enqueue = async (name: string, failTimes: number, engine: 'PGBOSS' | 'LEGACY') => {
    const job = await producer.manager.enqueue(shape.type, shape.payload(name, failTimes));
    expect(job.engine, name).toBe(engine);
    return job;
  };
  await expectPreflightClean(example, shape.type);

  await atPercent(example, 100);
  const onceBoss = await enqueue('flaky-boss', 1, 'PGBOSS');
  const deadBoss = await enqueue('down-boss', 9, 'PGBOSS');
  expect((await example.cli('rollout', 'set', '50', '--yes')).code).toBe(0);
  producer.flags.invalidate();
  const sent = await producer.manager.enqueueMany(shape.type, Array.from({ length: shape.batch }, (_, i) => ({ payload: shape.payload(`new-${i}`) })));
  expect(sent.filter((job) => job.engine === 'PGBOSS').length).toBeGreaterThan(0);
  await shape.enqueued?.(sent, { onceBoss, deadBoss });

  await shape.migrated?.(await json(example, 'migrate'));

  await atPercent(example, 0);
  const onceLegacy = await enqueue('flaky-legacy', 1, 'LEGACY');
  const deadLegacy = await enqueue('down-legacy', 9, 'LEGACY');
  const workers = [example.worker('legacy'), example.worker('pgboss')];
  await pollUntil('every due job done', shape.allDone, { timeoutMs: 90_000, intervalMs: 250 });
  await stopWorkers(workers);

  // Each job ran once, the flaky ones twice, the dead ones as often as their retries allow.
  const runs = await shape.runsPerJob();
  const expected = new Map<string, number>([
    [onceBoss.id, 2],
    [onceLegacy.id, 2],
    [deadBoss.id, shape.deadRuns ?? 3],
    [deadLegacy.id, shape.deadRuns ?? 3],
  ]);
  expect(runs.size).toBe(shape.dueBacklog + shape.batch + 4);
  for (const [id, engines] of runs) expect(engines, `job ${id}`).toHaveLength(expected.get(id) ?? 1);
  const jobs = { onceBoss, deadBoss, onceLegacy, deadLegacy, sent };
  await shape.ran?.(jobs);

  const reconciled = (await json(example, 'reconcile', '--grace', '0')) as { total: number };
  expect(reconciled.total, JSON.stringify(reconciled)).toBe(0);

  await shape.rollingBack?.();
  await shape.rolledBack?.(await json(example, 'rollback', '--yes'));

  const drain = await example.cli('drain-report', '--json');
  expect(drain.stdout, drain.stderr).not.toBe('');
  await shape.drained?.(JSON.parse(drain.stdout) as { types: unknown[] });
  return jobs;
}

/** A connection of the team's own runner: no cutover application name, so the guard applies to it. */
export async function teamClient(example: Example): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: example.database.url, options: '-c TimeZone=UTC' });
  await client.connect();
  return client;
}

/**
 * The team's runner beside cutover: jobs on pg-boss and rows of the team's own, the unpatched
 * runner refused on pg-boss's rows (`refused`), then the patched one (`patched`) working its own
 * rows while a pg-boss worker runs the others, until `bossDone`. The runs table is emptied first.
 */
export async function besideTeamRunner(
  example: Example,
  steps: {
    clearRuns(): Promise<void>;
    boss(): Promise<EnqueueResult[]>;
    own(): Promise<string[]>;
    refused(boss: EnqueueResult[]): Promise<void>;
    patched(own: string[]): Promise<void>;
    bossDone(boss: EnqueueResult[]): Promise<boolean>;
  },
): Promise<{ boss: EnqueueResult[]; own: string[] }> {
  expect((await example.cli('rollout', 'unkill')).code).toBe(0);
  await steps.clearRuns();
  await atPercent(example, 100);
  const boss = await steps.boss();
  expect(boss.every((job) => job.engine === 'PGBOSS')).toBe(true);
  const own = await steps.own();
  await steps.refused(boss);
  const pgboss = example.worker('pgboss');
  await steps.patched(own);
  await pollUntil('pg-boss to finish its jobs', () => steps.bossDone(boss), { timeoutMs: 60_000 });
  await stopWorkers([pgboss]);
  return { boss, own };
}
