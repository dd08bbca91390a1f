// /metrics and `cutover metrics` in Prometheus text format, agreeing with `cutover status --json`.
import { createRequire } from 'node:module';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { changeFlag } from '../../src/state/flags.js';
import { runCliInProcess } from '../helpers/cli.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { DEMO_REGISTRY, EVALUATION, seedDualRun, startDashboardCli, stopDashboard, type RunningDashboard } from '../dashboard/dashboard.shared.js';

/** parse-prometheus-text-format ships no types: what it returns, as far as these tests read it. */
interface MetricFamily {
  name: string;
  type: string;
  metrics: { labels?: Record<string, string>; value?: string }[];
}
const parsePrometheus = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => MetricFamily[];

type Labels = Record<string, string>;
interface Sample {
  name: string;
  labels: Labels;
  value: number;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/g;

/**
 * Every sample line, strictly: the exposition format's grammar for comments and samples, so a
 * malformed line fails here. Used beside parse-prometheus-text-format, which accepts the whole
 * document but drops the labels of histogram buckets whose `le` comes first (prom-client's order).
 */
function samples(text: string): Sample[] {
  const found: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || /^# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+$/.test(line)) continue;
    const match = SAMPLE_LINE.exec(line);
    if (!match) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Labels = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(LABEL)) labels[key!] = value!;
    found.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return found;
}

function valueOf(all: readonly Sample[], name: string, labels: Labels): number | undefined {
  return all.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length === Object.keys(labels).length)?.value;
}

interface StatusJson {
  flags: { jobType: string; percent: number; killSwitch: boolean; fallbackToLegacy: boolean }[];
  routes: { jobType: string; percent: number }[];
  jobs: { type: string; engine: string; status: string; count: number }[];
  queues: { queue: string; state: string; count: number }[];
  lastReconcile: { at: string; findings: number } | null;
}

const fixture = useEngineFixture({ registry: DEMO_REGISTRY });
let dashboard: RunningDashboard | undefined;
beforeEach(async () => {
  await seedDualRun({ ...fixture, url: fixture.database.url });
  await changeFlag(fixture.pool, { jobType: '*', basisPoints: 1000, fallbackToLegacy: false }, { actor: 'test', action: 'flag.set' });
});
afterEach(async () => {
  if (dashboard) await stopDashboard(dashboard);
  dashboard = undefined;
});

async function cliMetrics(): Promise<string> {
  const result = await runCliInProcess(['metrics', '--database-url', fixture.database.url]);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout;
}

describe('cutover metrics', () => {
  it('parses as Prometheus text and agrees with cutover status --json on every number both show', async () => {
    const text = await cliMetrics();
    const families = parsePrometheus(text);
    expect(families.map((f) => f.name)).toEqual(expect.arrayContaining(['cutover_jobs', 'cutover_rollout_flag_percent', 'cutover_pgboss_queue_jobs', 'cutover_job_latency_seconds', 'cutover_reconcile_findings']));
    expect(families.find((f) => f.name === 'cutover_job_latency_seconds')?.type).toBe('HISTOGRAM');
    const all = samples(text);

    const status = await runCliInProcess(['status', '--json', '--database-url', fixture.database.url]);
    expect(status.code, status.stderr).toBe(0);
    const report = JSON.parse(status.stdout) as StatusJson;

    expect(report.flags.length).toBe(2);
    for (const flag of report.flags) {
      expect(valueOf(all, 'cutover_rollout_flag_percent', { type: flag.jobType }), flag.jobType).toBe(flag.percent);
      expect(valueOf(all, 'cutover_rollout_kill_switch', { type: flag.jobType })).toBe(flag.killSwitch ? 1 : 0);
      expect(valueOf(all, 'cutover_rollout_fallback_enabled', { type: flag.jobType })).toBe(flag.fallbackToLegacy ? 1 : 0);
    }
    for (const route of report.routes) expect(valueOf(all, 'cutover_route_percent', { type: route.jobType }), route.jobType).toBe(route.percent);

    // Waiting and running rows, both ways round: nothing one shows that the other lacks.
    const live = report.jobs.filter((job) => job.status === 'PENDING' || job.status === 'RUNNING');
    expect(live.length).toBeGreaterThanOrEqual(4);
    for (const job of live) {
      const state = job.status === 'PENDING' ? 'waiting' : 'running';
      expect(valueOf(all, 'cutover_jobs', { type: job.type, engine: job.engine, state }), `${job.type} ${job.engine} ${state}`).toBe(job.count);
    }
    for (const sample of all.filter((s) => s.name === 'cutover_jobs')) {
      const status = sample.labels.state === 'waiting' ? 'PENDING' : 'RUNNING';
      const count = live.find((job) => job.type === sample.labels.type && job.engine === sample.labels.engine && job.status === status)?.count ?? 0;
      expect(sample.value, JSON.stringify(sample.labels)).toBe(count);
    }

    // pg-boss queues: unfinished states per queue, and dead letters waiting in each .dlq.
    const queueCount = (queue: string, state: string) => report.queues.find((q) => q.queue === queue && q.state === state)?.count ?? 0;
    for (const route of report.routes) {
      for (const state of ['created', 'retry', 'active']) expect(valueOf(all, 'cutover_pgboss_queue_jobs', { type: route.jobType, state }), `${route.jobType} ${state}`).toBe(queueCount(route.jobType, state));
      const dlq = `${route.jobType}.dlq`;
      expect(valueOf(all, 'cutover_pgboss_dead_letters', { type: route.jobType })).toBe(queueCount(dlq, 'created') + queueCount(dlq, 'retry'));
    }
    expect(queueCount(EVALUATION, 'created')).toBeGreaterThan(0);
    expect(queueCount(`${EVALUATION}.dlq`, 'created')).toBe(2);

    const findings = all.filter((s) => s.name === 'cutover_reconcile_findings').reduce((sum, s) => sum + s.value, 0);
    expect(findings).toBe(report.lastReconcile!.findings);
    expect(valueOf(all, 'cutover_reconcile_last_run_timestamp_seconds', {})).toBe(Date.parse(report.lastReconcile!.at) / 1000);
  });

  it('counts finished jobs, fallbacks and hand-backs over the window, and latency histograms per type and engine', async () => {
    const all = samples(await cliMetrics());
    const finished = (engine: string, outcome: string, type = EVALUATION) => valueOf(all, 'cutover_jobs_finished', { type, engine, outcome, window_seconds: '3600' });
    expect([finished('LEGACY', 'completed'), finished('LEGACY', 'failed'), finished('PGBOSS', 'completed'), finished('PGBOSS', 'failed')]).toEqual([4, 1, 5, 2]);
    expect(finished('LEGACY', 'completed', 'import.article')).toBe(1);
    expect(valueOf(all, 'cutover_fallbacks', { type: 'notification.send', window_seconds: '3600' })).toBe(1);
    expect(valueOf(all, 'cutover_handbacks', { type: EVALUATION, window_seconds: '3600' })).toBe(1);

    const bucket = (engine: string, le: string, type = EVALUATION) => valueOf(all, 'cutover_job_latency_seconds_bucket', { le, type, engine, window_seconds: '3600' });
    const labels = (engine: string, type = EVALUATION) => ({ type, engine, window_seconds: '3600' });
    // Legacy: 2 s three times, and the retried chain 20 s from its first attempt.
    expect([bucket('LEGACY', '1'), bucket('LEGACY', '2.5'), bucket('LEGACY', '10'), bucket('LEGACY', '30'), bucket('LEGACY', '+Inf')]).toEqual([0, 3, 3, 4, 4]);
    expect(valueOf(all, 'cutover_job_latency_seconds_sum', labels('LEGACY'))).toBeCloseTo(26, 6);
    expect(valueOf(all, 'cutover_job_latency_seconds_count', labels('LEGACY'))).toBe(4);
    // pg-boss: 0.3 s three times, 2 s twice.
    expect([bucket('PGBOSS', '0.25'), bucket('PGBOSS', '0.5'), bucket('PGBOSS', '1'), bucket('PGBOSS', '2.5')]).toEqual([0, 3, 3, 5]);
    expect(valueOf(all, 'cutover_job_latency_seconds_sum', labels('PGBOSS'))).toBeCloseTo(4.9, 6);
    expect([bucket('LEGACY', '300', 'import.article'), bucket('LEGACY', '900', 'import.article')]).toEqual([0, 1]);
  });

  it('is what the dashboard serves at /metrics', async () => {
    dashboard = await startDashboardCli(fixture.database.url);
    const response = await fetch(`${dashboard.url}metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const served = samples(await response.text());
    const printed = samples(await cliMetrics());
    const comparable = (list: Sample[]) => list.filter((s) => s.name !== 'cutover_metrics_read_seconds');
    expect(comparable(served)).toEqual(comparable(printed));
    expect(served.length).toBeGreaterThan(40);
  });
});
