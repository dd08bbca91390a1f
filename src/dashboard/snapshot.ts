import type { Pool } from '../db/pool.js';
import type { JobRegistry } from '../jobs/registry.js';
import type { Logger } from '../support/log.js';
import { messageOf } from '../support/errors.js';
import { DEFAULT_WINDOW, METRICS_PARTS, metricsOf, readMetrics, readPgbossWarnings, type ActivityWindow, type FlagView, type MetricsData } from '../observe/metrics.js';
import { readState, type Controller } from '../observe/state.js';
import { describeStep } from '../plans/plan.js';
import { evaluateStep, planRunOf, type PlanRun } from '../plans/plan-runner.js';
import type { GateResult, GateStatus } from '../plans/gates.js';
import type { EffectiveRoute, EnvOverride } from '../rollout/decide.js';
import { DEFAULT_FLAG } from '../state/flags.js';
import type { LegacyTable } from '../table/table.js';
import { recentEvents, type EventView } from './events.js';

export interface GatesView {
  status: GateStatus;
  /** Gates cost several queries over both systems: they are measured at most every gatesEverySeconds. */
  measuredAt: string;
  results: GateResult[];
}

export interface PlanView {
  id: string;
  name: string;
  jobType: string;
  state: PlanRun['state'];
  /** 1-based, as people count. */
  step: number;
  steps: number;
  does: string;
  reason: string | null;
  /** A plan nobody drives (no `cutover plan run` attached) stands still. */
  controlled: boolean;
  /** The current analysis step's gates, measured; null on other steps. */
  gates: GatesView | null;
  /** Why the gates could not be measured, if they could not. */
  gatesError: string | null;
}

/** One row of the routing table: `*` or a registered type. */
export interface TypeView {
  jobType: string;
  flag: FlagView | null;
  /** Where its new jobs go; `*` itself has none (it is a default, not a type). */
  route: EffectiveRoute | null;
  plan: PlanView | null;
}

export interface DashboardSnapshot extends MetricsData {
  types: TypeView[];
  plans: PlanView[];
  events: EventView[];
  envOverride: EnvOverride;
}

export interface SnapshotSource {
  pool: Pool;
  databaseUrl: string;
  registry: JobRegistry;
  table: LegacyTable;
  log: Logger;
  env: EnvOverride;
  window?: ActivityWindow;
  /** @defaultValue 30 */
  gatesEverySeconds?: number;
  now?: () => number;
}

/** Measured gates of active runs, kept per run and step for `gatesEverySeconds`. */
class GateCache {
  private readonly entries = new Map<string, { at: number; gates: Promise<GatesView> }>();

  constructor(private readonly source: SnapshotSource) {}

  get(run: PlanRun): Promise<GatesView> {
    const now = (this.source.now ?? Date.now)();
    const key = `${run.id}:${run.currentStep}`;
    const cached = this.entries.get(key);
    if (cached && now - cached.at < (this.source.gatesEverySeconds ?? 30) * 1000) return cached.gates;
    const context = { pool: this.source.pool, databaseUrl: this.source.databaseUrl, registry: this.source.registry, table: this.source.table, log: this.source.log, actor: 'dashboard' };
    const gates = evaluateStep(context, run).then((result) => ({ ...result, measuredAt: new Date(now).toISOString() }));
    // A failed measurement is not kept: the next refresh tries again.
    gates.catch(() => this.entries.delete(key));
    this.entries.set(key, { at: now, gates });
    for (const [other, entry] of this.entries) if (now - entry.at > 600_000) this.entries.delete(other);
    return gates;
  }
}

/** The last read's promise, reused while younger than `maxAgeMs`; a read that fails is not kept. */
class Fresh<T> {
  private entry: { at: number; value: Promise<T> } | undefined;

  constructor(
    private readonly maxAgeMs: number,
    private readonly now: () => number,
  ) {}

  /** The kept value, if still fresh. */
  peek(): Promise<T> | undefined {
    return this.entry && this.now() - this.entry.at < this.maxAgeMs ? this.entry.value : undefined;
  }

  get(read: () => Promise<T>): Promise<T> {
    const kept = this.peek();
    if (kept) return kept;
    const entry = { at: this.now(), value: read() };
    this.entry = entry;
    entry.value.catch(() => {
      if (this.entry === entry) this.entry = undefined;
    });
    return entry.value;
  }

  clear(): void {
    this.entry = undefined;
  }
}

/**
 * What the page shows, read once per refresh however many pages poll: the metrics, the active
 * plans with their gates, the audit log. Kept for `maxAgeMs`; a write drops it so its effect
 * shows on the next poll.
 */
export class Snapshots {
  private readonly snapshot: Fresh<DashboardSnapshot>;
  private readonly metricsOnly: Fresh<MetricsData>;
  private readonly gates: GateCache;

  constructor(
    private readonly source: SnapshotSource,
    maxAgeMs: number,
  ) {
    this.gates = new GateCache(source);
    const now = () => (source.now ?? Date.now)();
    this.snapshot = new Fresh(maxAgeMs, now);
    this.metricsOnly = new Fresh(maxAgeMs, now);
  }

  get(): Promise<DashboardSnapshot> {
    return this.snapshot.get(() => this.read());
  }

  /**
   * What /metrics needs: the page's snapshot when a fresh one is at hand, else the metrics reads
   * alone, so a Prometheus scrape never pays for the plans' gates or the audit log.
   */
  metrics(): Promise<MetricsData> {
    return this.snapshot.peek() ?? this.metricsOnly.get(() => this.readMetrics());
  }

  invalidate(): void {
    this.snapshot.clear();
    this.metricsOnly.clear();
  }

  private readMetrics(): Promise<MetricsData> {
    const { pool, registry, table, env } = this.source;
    return readMetrics({ pool, table, types: registry.names(), env, ...(this.source.window ? { window: this.source.window } : {}) });
  }

  private async read(): Promise<DashboardSnapshot> {
    const { pool, registry, table, env } = this.source;
    const types = registry.names();
    const window = this.source.window ?? DEFAULT_WINDOW;
    // The metrics and the active plans with their controllers in one read of the read model.
    const [state, events, warnings] = await Promise.all([
      readState(pool, table, { parts: [...METRICS_PARTS, 'plans'], types, env, window }),
      recentEvents(pool),
      readPgbossWarnings(pool),
    ]);
    const metrics = metricsOf(state, window, warnings);
    const plans = await Promise.all(state.plans.map(planRunOf).map((run) => this.planView(run, metrics.pgbossInstalled)));
    const flagOf = (jobType: string) => metrics.flags.find((flag) => flag.jobType === jobType) ?? null;
    const rows: TypeView[] = [DEFAULT_FLAG, ...types].map((jobType) => ({
      jobType,
      flag: flagOf(jobType),
      route: metrics.routes.find((route) => route.jobType === jobType) ?? null,
      plan: plans.find((plan) => plan.jobType === jobType) ?? null,
    }));
    return { ...metrics, types: rows, plans, events, envOverride: env };
  }

  private async planView(run: PlanRun & { controller: Controller | null }, pgbossInstalled: boolean): Promise<PlanView> {
    const step = run.plan.steps[run.currentStep];
    // Before any pg-boss process ran there is nothing to measure (and no pgboss.job to read).
    const analysis = step !== undefined && 'analysis' in step && pgbossInstalled;
    const { controller } = run;
    const gates = analysis
      ? await this.gates.get(run).then((g) => ({ gates: g, error: null }), (error: unknown) => ({ gates: null, error: messageOf(error) }))
      : { gates: null, error: null };
    if (gates.error) this.source.log.warn({ plan: run.planName, err: gates.error }, 'could not measure the gates for the dashboard');
    return {
      id: run.id,
      name: run.planName,
      jobType: run.jobType,
      state: run.state,
      step: Math.min(run.currentStep + 1, run.plan.steps.length),
      steps: run.plan.steps.length,
      does: step ? describeStep(step) : 'all steps done',
      reason: run.reason,
      controlled: controller !== null,
      gates: gates.gates,
      gatesError: gates.error,
    };
  }
}
