// The chaos run's verdict, computed from the database once everything has stopped: what the
// producer committed (ChaosLedger), what became of each logical job (Job), every execution
// (ChaosExec, written with DemoDelivery by the handlers), every transition to COMPLETED
// (ChaosCompleted, a trigger), the kill switch's history (RolloutEvent), and what the harness
// did (its events: kills, the crash, operator commands, unexpected exits).
//
// A logical job is one producer enqueue: a legacy retry chain counts once (rows sharing
// COALESCE("originalJobId", id), whose first row's id is the job's key `k`), and a job that
// went back and forth between the engines is still the same one (same id, same `k`).

/**
 * The "explained" rule for an extra execution.
 *
 * Each logical job J runs n ≥ 1 times; n − 1 executions are "extra". Some are the design: an
 * execution that failed on purpose (chaos.flaky's first, every chaos.doomed run) is followed by
 * a retry, so every designed failure but the last one accounts for one extra execution. What
 * is left over needs a cause the harness recorded, and J's leftovers are explained when, with
 * [start, end] = [J's first execution start, J's final completion (its last row's completedAt,
 * or its last execution start if later)]:
 *   - kill:  a worker that ran one of J's executions (ChaosExec.workerPid: the legacy runner,
 *            or the pg-boss worker) was kill -9'd at or after that execution started (its
 *            record may land up to RECORD_LAG_MS after the kill) and no later than `end`: its claim was lost, so the job comes back (stale-row recovery,
 *            pg-boss expiry) and runs again;
 *   - stall: one of J's executions stalled on purpose past its timeout and expiry (chaos.stall's
 *            first run), so pg-boss expired it and ran it again;
 *   - crash: the Postgres crash (from stop to accepting connections again) overlaps
 *            [start, end]: an outcome that could not be committed is retried;
 *   - failed: a legacy run of J failed for a reason its row records (not a designed failure,
 *            not a dead worker's recovery): a timeout on a machine too busy to run the job in
 *            time, say; its retry is the type's policy. Reported with the errors.
 * Otherwise they are unexplained, and the run fails. (1 s of slack on `end`: completedAt is
 * stored to the millisecond, the harness's clock reads are not atomic with the kills.)
 *
 * Further invariants (DESIGN §5, §12) checked on the same data, each one a failure:
 *   - completedThenRun: no execution of J starts after a row of J was committed COMPLETED
 *     ("a success is never run again"; the mirror never says COMPLETED for a job pg-boss will
 *     run again);
 *   - earlyRetries: after a designed failure the next execution starts no sooner than the type's
 *     retry delay (the scheduled time is carried through migrate and rollback);
 *   - killSwitchEscapes: no pg-boss execution starts while the `*` kill switch has been on for
 *     longer than one flag TTL plus a second (hand-back: such a job goes to legacy, whether a
 *     late-committing transaction or a migrate put it there), except on a worker whose own
 *     event loop was blocked by a stall at the time;
 *   - phantomCompletions: no logical job is COMPLETED without any execution;
 *   - chainsPastAttempts: no logical job runs more times than its maxAttempts, and no row says
 *     attempts > maxAttempts (attempts carried across migrate and rollback).
 */

const WORKER_KINDS = new Set(['legacy', 'pgboss']);
// An execution's `at` is Postgres's clock when its INSERT ran, not when the handler sent it: a
// statement already in the socket when its worker is killed is still run, and on a loaded
// machine Postgres may get to it after the kill was noted (seed 303 at 10,000 jobs). A killed process starts
// nothing, so a run its pid recorded shortly after the kill began before it.
const RECORD_LAG_MS = 5000;
const SAMPLE = 10;

const ms = (date) => (date instanceof Date ? date.getTime() : new Date(date).getTime());

export async function computeVerdict(db, { events, definitions, flagTtlMs, stallMs }) {
  const [ledger, jobs, execs, completions, flagEvents] = await Promise.all([
    db.query(`SELECT k::text AS k, type, mode, engine FROM "ChaosLedger"`),
    db.query(
      `SELECT id::text AS id, type, status::text AS status, engine::text AS engine, attempts, "maxAttempts",
              COALESCE("originalJobId", id)::text AS root, "routeReason", ("completedAt" AT TIME ZONE 'UTC') AS "completedAt", error
         FROM "Job"`,
    ),
    db.query(`SELECT k::text AS k, "jobId", engine, attempt, pid, "workerPid", "designedFail", stall, at FROM "ChaosExec" ORDER BY at, id`),
    db.query(`SELECT COALESCE(j."originalJobId", j.id)::text AS root, c."rowId"::text AS "rowId", c.engine, c.at FROM "ChaosCompleted" c JOIN "Job" j ON j.id = c."rowId" ORDER BY c.at`),
    db.query(`SELECT at, action, after FROM "RolloutEvent" WHERE "jobType" = '*' ORDER BY at, id`),
  ]);

  const rowsByRoot = groupBy(jobs.rows, (row) => row.root);
  const rowById = new Map(jobs.rows.map((row) => [row.id, row]));
  const execsByK = groupBy(execs.rows, (exec) => exec.k);
  const firstCompletion = new Map();
  for (const c of completions.rows) if (!firstCompletion.has(c.root)) firstCompletion.set(c.root, c);

  const kills = events.filter((e) => e.action === 'kill' && WORKER_KINDS.has(e.kind));
  const crashes = events.filter((e) => e.action === 'crash' && e.endedAt);

  // What was enqueued: every committed ledger entry, and an uncertain one if its row exists.
  const logical = ledger.rows.filter((entry) => entry.mode !== 'uncertain' || rowsByRoot.has(entry.k));
  const ledgerKeys = new Set(ledger.rows.map((entry) => entry.k));
  const unledgered = [...rowsByRoot.keys()].filter((root) => !ledgerKeys.has(root));

  const result = {
    logical: { enqueued: logical.length, byMode: countBy(logical, (entry) => entry.mode), completed: 0, failedForGood: 0, lost: 0, lostSample: [], unledgeredRows: unledgered.length, uncertain: ledger.rows.length - logical.length },
    executions: { total: execs.rows.length, byEngine: countBy(execs.rows, (e) => e.engine), extra: 0, byDesign: 0, explained: { kill: 0, stall: 0, crash: 0, failed: 0 }, failedSample: [], unexplained: 0, unexplainedSample: [] },
    chainsPastAttempts: { count: 0, sample: [] },
    completedThenRun: { count: 0, sample: [] },
    earlyRetries: { count: 0, sample: [] },
    killSwitchEscapes: { count: 0, byRouteReason: {}, sample: [] },
    phantomCompletions: { count: 0, sample: [] },
    finalEngine: {},
  };

  for (const entry of logical) {
    const rows = rowsByRoot.get(entry.k) ?? [];
    const runs = execsByK.get(entry.k) ?? [];
    const definition = definitions.get(entry.type);
    const completed = rows.some((row) => row.status === 'COMPLETED');
    const open = rows.some((row) => row.status === 'PENDING' || row.status === 'RUNNING');
    const failed = !completed && !open && rows.length > 0;
    if (completed) result.logical.completed += 1;
    else if (failed) result.logical.failedForGood += 1;
    else {
      result.logical.lost += 1;
      push(result.logical.lostSample, { k: entry.k, type: entry.type, rows: rows.map((row) => `${row.id} ${row.engine} ${row.status} attempts ${row.attempts}`) });
    }
    const last = rows.reduce((latest, row) => (!latest || (row.completedAt && ms(row.completedAt) > ms(latest.completedAt ?? 0)) ? row : latest), undefined);
    if (last) result.finalEngine[last.engine] = (result.finalEngine[last.engine] ?? 0) + 1;

    if (completed && runs.length === 0) {
      result.phantomCompletions.count += 1;
      push(result.phantomCompletions.sample, { k: entry.k, type: entry.type });
    }

    const maxAttempts = Math.max(definition ? definition.retry.limit + 1 : 0, ...rows.map((row) => row.maxAttempts));
    const rowAttempts = Math.max(0, ...rows.map((row) => row.attempts));
    if (runs.length > maxAttempts || rowAttempts > maxAttempts) {
      result.chainsPastAttempts.count += 1;
      push(result.chainsPastAttempts.sample, { k: entry.k, type: entry.type, executions: runs.length, rowAttempts, maxAttempts, runs: describeRuns(runs) });
    }

    if (!runs.length) continue;
    const start = ms(runs[0].at);
    const end = Math.max(ms(runs[runs.length - 1].at), ...rows.filter((row) => row.completedAt).map((row) => ms(row.completedAt))) + 1000;

    // Extra executions and their causes.
    const extra = runs.length - 1;
    result.executions.extra += extra;
    const byDesign = Math.min(extra, runs.slice(0, -1).filter((run) => run.designedFail).length);
    result.executions.byDesign += byDesign;
    const leftover = extra - byDesign;
    if (leftover > 0) {
      const cause = runs.some((run) => run.stall)
        ? 'stall'
        : runs.some((run) => kills.some((kill) => kill.pid === run.workerPid && ms(kill.at) >= ms(run.at) - RECORD_LAG_MS && ms(kill.at) <= end))
          ? 'kill'
          : crashes.some((crash) => ms(crash.at) <= end && ms(crash.endedAt) >= start)
            ? 'crash'
            : undefined;
      // A legacy run that failed for a reason its row records, other than a designed failure or
      // a dead worker's recovery (which needs a kill to explain it): a job timing out on a
      // machine too busy to run it in time, say. Its retry is the type's policy.
      const recordedFailures = rows.filter((row) => row.engine === 'LEGACY' && row.status === 'FAILED' && row.error && !/presumed dead|designed failure/i.test(row.error));
      if (cause) result.executions.explained[cause] += leftover;
      else if (recordedFailures.length >= leftover) {
        result.executions.explained.failed += leftover;
        push(result.executions.failedSample, { k: entry.k, type: entry.type, errors: recordedFailures.map((row) => row.error), runs: describeRuns(runs) });
      } else {
        result.executions.unexplained += leftover;
        push(result.executions.unexplainedSample, { k: entry.k, type: entry.type, runs: describeRuns(runs), rows: rows.map((row) => `${row.id} ${row.engine} ${row.status} ${row.routeReason ?? ''} ${row.error ?? ''}`.trimEnd()) });
      }
    }

    // A success is never run again.
    const done = firstCompletion.get(entry.k);
    if (done) {
      const after = runs.filter((run) => ms(run.at) > ms(done.at) + 50);
      if (after.length) {
        result.completedThenRun.count += 1;
        push(result.completedThenRun.sample, { k: entry.k, type: entry.type, completedAt: iso(done.at), completedBy: done.engine, runsAfter: describeRuns(after), runs: describeRuns(runs) });
      }
    }

    // Scheduled retries start no sooner than their delay.
    const delayMs = (definition?.retry.delaySeconds ?? 0) * 1000;
    for (let i = 0; i + 1 < runs.length; i++) {
      if (!runs[i].designedFail) continue;
      const gap = ms(runs[i + 1].at) - ms(runs[i].at);
      if (gap < delayMs - 200) {
        result.earlyRetries.count += 1;
        push(result.earlyRetries.sample, { k: entry.k, type: entry.type, gapMs: gap, delayMs, from: `${runs[i].engine}#${runs[i].attempt}`, to: `${runs[i + 1].engine}#${runs[i + 1].attempt}`, rows: rows.map((row) => `${row.id} ${row.engine} ${row.routeReason ?? ''}`) });
      }
    }
  }

  // Kill switch ('*') intervals, from the audit log.
  const intervals = [];
  let onSince;
  for (const event of flagEvents.rows) {
    // Only flag changes say where the switch is; migrate and rollback audit rows say nothing of it.
    if (typeof event.after?.killSwitch !== 'boolean') continue;
    const on = event.after.killSwitch;
    if (on && onSince === undefined) onSince = ms(event.at);
    if (!on && onSince !== undefined) {
      intervals.push([onSince, ms(event.at)]);
      onSince = undefined;
    }
  }
  if (onSince !== undefined) intervals.push([onSince, Number.POSITIVE_INFINITY]);
  const stalls = execs.rows.filter((exec) => exec.stall && exec.engine === 'PGBOSS').map((exec) => ({ pid: exec.workerPid, from: ms(exec.at), to: ms(exec.at) + stallMs + 1500 }));
  const margin = flagTtlMs + 500;
  for (const exec of execs.rows) {
    if (exec.engine !== 'PGBOSS') continue;
    const at = ms(exec.at);
    const interval = intervals.find(([from, to]) => at >= from + margin && at < to);
    if (!interval) continue;
    if (stalls.some((stall) => stall.pid === exec.workerPid && at >= stall.from && at <= stall.to)) continue;
    const row = rowById.get(exec.jobId);
    const reason = row?.routeReason ?? 'unknown';
    result.killSwitchEscapes.count += 1;
    result.killSwitchEscapes.byRouteReason[reason] = (result.killSwitchEscapes.byRouteReason[reason] ?? 0) + 1;
    push(result.killSwitchEscapes.sample, { jobId: exec.jobId, type: row?.type, routeReason: reason, startedAt: iso(exec.at), killSwitchOnFor: `${((at - interval[0]) / 1000).toFixed(1)}s` });
  }
  result.killSwitch = { intervals: intervals.map(([from, to]) => ({ from: iso(from), seconds: Number.isFinite(to) ? Math.round((to - from) / 100) / 10 : null })) };
  return result;
}

function describeRuns(runs) {
  return runs.map((run) => `${iso(run.at).slice(11, 23)} ${run.engine}#${run.attempt} worker ${run.workerPid}${run.designedFail ? ' fail' : ''}${run.stall ? ' stall' : ''}`);
}

function iso(value) {
  return new Date(ms(value)).toISOString();
}

function push(sample, item) {
  if (sample.length < SAMPLE) sample.push(item);
}

function groupBy(items, key) {
  const map = new Map();
  for (const item of items) {
    const k = key(item);
    const group = map.get(k);
    if (group) group.push(item);
    else map.set(k, [item]);
  }
  return map;
}

function countBy(items, key) {
  const counts = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}
