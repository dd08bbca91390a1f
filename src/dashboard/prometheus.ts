import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { LATENCY_BUCKETS, type LatencyBuckets, type MetricsData } from '../observe/metrics.js';

export const PROMETHEUS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/**
 * Prometheus metrics from one read of MetricsData. Every value is read from the database at
 * scrape time, so any number of dashboard or `cutover metrics` processes report the same thing
 * and a restart loses nothing: gauges for the state now, and for finished work over the
 * window (`window_seconds` says which; these are not running totals, so use them without rate()).
 */
export function buildRegistry(data: MetricsData): Registry {
  const registry = new Registry();
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[]) => new Gauge<L>({ name, help, labelNames, registers: [registry] });
  const window = `${data.window.seconds}`;

  const percent = gauge('cutover_rollout_flag_percent', 'Percentage of new jobs a flag routes to pg-boss (type * is the default flag)', ['type']);
  const kill = gauge('cutover_rollout_kill_switch', '1 when the kill switch of the flag is on: every new job goes to legacy', ['type']);
  const fallback = gauge('cutover_rollout_fallback_enabled', '1 when a job pg-boss refuses is written to legacy instead', ['type']);
  for (const flag of data.flags) {
    percent.set({ type: flag.jobType }, flag.percent);
    kill.set({ type: flag.jobType }, flag.killSwitch ? 1 : 0);
    fallback.set({ type: flag.jobType }, flag.fallbackToLegacy ? 1 : 0);
  }
  const route = gauge('cutover_route_percent', 'Percentage of new jobs of a registered type that go to pg-boss now, after kill switches and environment overrides', ['type']);
  for (const entry of data.routes) route.set({ type: entry.jobType }, entry.percent);

  const jobs = gauge('cutover_jobs', 'Rows of the legacy table waiting or running now, by the engine that owns them', ['type', 'engine', 'state']);
  for (const row of data.live) {
    jobs.set({ type: row.type, engine: row.engine, state: 'waiting' }, row.waiting);
    jobs.set({ type: row.type, engine: row.engine, state: 'running' }, row.running);
  }

  const queue = gauge('cutover_pgboss_queue_jobs', "Unfinished jobs in a type's pg-boss queue, by pg-boss state", ['type', 'state']);
  const dead = gauge('cutover_pgboss_dead_letters', "Jobs waiting in a type's dead letter queue (what cutover dlq list shows)", ['type']);
  for (const depth of data.queues) {
    if (depth.deadLetter) {
      dead.set({ type: depth.type }, depth.created + depth.retry);
      continue;
    }
    for (const state of ['created', 'retry', 'active'] as const) queue.set({ type: depth.type, state }, depth[state]);
  }

  const finished = gauge('cutover_jobs_finished', 'Jobs that finished within the window, by engine and outcome (failed: for good, a retried legacy attempt is not counted)', ['type', 'engine', 'outcome', 'window_seconds']);
  const fallbacks = gauge('cutover_fallbacks', 'Jobs created within the window that pg-boss refused and the fallback wrote to legacy', ['type', 'window_seconds']);
  const handbacks = gauge('cutover_handbacks', 'Jobs created within the window that a pg-boss worker handed back to legacy under a kill switch', ['type', 'window_seconds']);
  const byType = new Map<string, { fallbacks: number; handedBack: number }>();
  for (const total of data.activity.totals) {
    finished.set({ type: total.type, engine: total.engine, outcome: 'completed', window_seconds: window }, total.completed);
    finished.set({ type: total.type, engine: total.engine, outcome: 'failed', window_seconds: window }, total.failed);
    const sums = byType.get(total.type) ?? { fallbacks: 0, handedBack: 0 };
    byType.set(total.type, { fallbacks: sums.fallbacks + total.fallbacks, handedBack: sums.handedBack + total.handedBack });
  }
  for (const [type, sums] of byType) {
    fallbacks.set({ type, window_seconds: window }, sums.fallbacks);
    handbacks.set({ type, window_seconds: window }, sums.handedBack);
  }

  const latency = new Histogram<'type' | 'engine' | 'window_seconds'>({
    name: 'cutover_job_latency_seconds',
    help: 'Creation to completion of the jobs completed within the window (a legacy retry counts from its first attempt)',
    labelNames: ['type', 'engine', 'window_seconds'],
    buckets: [...LATENCY_BUCKETS],
    registers: [registry],
  });
  for (const buckets of data.activity.latency) observeBuckets(latency, { type: buckets.type, engine: buckets.engine, window_seconds: window }, buckets);

  const findings = gauge('cutover_reconcile_findings', 'Findings of the last reconcile, by class', ['class']);
  if (data.reconcile) {
    for (const [name, count] of Object.entries(data.reconcile.byClass)) findings.set({ class: name }, count);
    // Only when a reconcile ran: a gauge without labels would otherwise report 0, the epoch.
    gauge('cutover_reconcile_last_run_timestamp_seconds', 'When the last reconcile finished', []).set(Date.parse(data.reconcile.at) / 1000);
  }
  if (data.pgbossWarnings) {
    // A counter read whole from pgboss.warning (observe/metrics.ts): it grows with each warning a
    // worker keeps, and drops only when pg-boss prunes rows past warningRetentionDays (365 by
    // default), which rate() and increase() read as a counter reset.
    const warnings = new Counter<'kind'>({ name: 'cutover_pgboss_warnings_total', help: "Warnings pg-boss's workers emitted and kept in pgboss.warning, by pg-boss's kind (slow_query, queue_backlog, clock_skew, …)", labelNames: ['kind'], registers: [registry] });
    for (const entry of data.pgbossWarnings) warnings.inc({ kind: entry.kind }, entry.count);
  }
  gauge('cutover_pgboss_installed', '1 once pg-boss has installed its schema in this database', []).set(data.pgbossInstalled ? 1 : 0);
  gauge('cutover_metrics_read_seconds', 'How long reading these metrics from the database took', []).set(data.seconds);
  return registry;
}

/**
 * prom-client histograms only take single observations, and the database hands back each
 * bucket's count and sum instead of every job's latency (so a scrape moves a few numbers, not
 * one per job). Observing a bucket's mean once per job in it reproduces that bucket's count and
 * sum exactly: the mean of values in (lower, upper] lies in (lower, upper] (the upper bound is
 * taken should rounding push it out of its bucket).
 */
function observeBuckets(histogram: Histogram<'type' | 'engine' | 'window_seconds'>, labels: Record<'type' | 'engine' | 'window_seconds', string>, buckets: LatencyBuckets): void {
  const child = histogram.labels(labels);
  buckets.counts.forEach((count, index) => {
    if (!count) return;
    const lower = index === 0 ? -Infinity : LATENCY_BUCKETS[index - 1]!;
    const upper = LATENCY_BUCKETS[index] ?? Infinity;
    const mean = (buckets.sums[index] ?? 0) / count;
    const value = mean > lower && mean <= upper ? mean : Number.isFinite(upper) ? upper : lower + Math.max(1e-9, Math.abs(lower) * 1e-12);
    for (let i = 0; i < count; i += 1) child.observe(value);
  });
}

/** The Prometheus text exposition of the data. */
export function renderPrometheus(data: MetricsData): Promise<string> {
  return buildRegistry(data).metrics();
}
