// pg-boss's warnings as counters in /metrics: a worker's pg-boss emits one for real (a queue
// backlog over the queue's warningQueueSize), and another process's /metrics counts it by kind.
import type { PgBoss } from 'pg-boss';
import { afterEach, describe, expect, it } from 'vitest';
import { startBoss } from '../../src/pgboss/boss.js';
import { quietLog } from '../helpers/engines.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { fixtureRegistry } from '../helpers/jobs.js';
import { runCliInProcess } from '../helpers/cli.js';
import { pollUntil } from '../helpers/wait.js';
import { startDashboardCli, stopDashboard, type RunningDashboard } from '../dashboard/dashboard.shared.js';

const fixture = useEngineFixture({});
let worker: PgBoss | undefined;
let dashboard: RunningDashboard | undefined;
afterEach(async () => {
  if (dashboard) await stopDashboard(dashboard);
  dashboard = undefined;
  await worker?.stop({ graceful: false, close: true });
  worker = undefined;
});

const warningsLine = (text: string, kind: string) => new RegExp(`^cutover_pgboss_warnings_total\\{kind="${kind}"\\} (\\d+)$`, 'm').exec(text)?.[1];

describe('cutover_pgboss_warnings_total', () => {
  it("counts a worker's pg-boss warnings by kind, on the dashboard's /metrics and in cutover metrics", async () => {
    const { pool, database, producer } = fixture;
    // Nothing works the queue: its two jobs stay queued, over the threshold of one.
    await producer.boss.updateQueue('test.noop', { warningQueueSize: 1 });
    await producer.boss.send('test.noop', {});
    await producer.boss.send('test.noop', {});

    const before = await runCliInProcess(['metrics', '--registry', fixtureRegistry, '--database-url', database.url]);
    expect(before.code, before.stderr).toBe(0);
    expect(warningsLine(before.stdout, 'queue_backlog')).toBeUndefined();

    const emitted: string[] = [];
    worker = await startBoss({ databaseUrl: database.url, log: quietLog, role: 'worker', superviseIntervalSeconds: 1 });
    worker.on('warning', (warning) => emitted.push(warning.message));
    await pollUntil('pg-boss to warn of the backlog', async () => emitted.some((message) => message.includes('large queue backlog') && message.includes('"test.noop"')), { timeoutMs: 30_000 });
    const kept = await pollUntil('the warning to be kept', async () => {
      const { rows } = await pool.query<{ count: number }>(`SELECT count(*)::int AS count FROM pgboss.warning WHERE type = 'queue_backlog'`);
      return rows[0]!.count > 0 && rows[0]!.count;
    });
    await worker.stop({ graceful: false, close: true });
    worker = undefined;
    // The worker is gone: what it emitted is still counted, by every reader.
    const counted = (await pool.query<{ count: number }>(`SELECT count(*)::int AS count FROM pgboss.warning WHERE type = 'queue_backlog'`)).rows[0]!.count;
    expect(counted).toBeGreaterThanOrEqual(kept);

    const cli = await runCliInProcess(['metrics', '--registry', fixtureRegistry, '--database-url', database.url]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toContain('# TYPE cutover_pgboss_warnings_total counter');
    expect(Number(warningsLine(cli.stdout, 'queue_backlog'))).toBe(counted);

    dashboard = await startDashboardCli(database.url, ['--registry', fixtureRegistry]);
    const response = await fetch(`${dashboard.url}metrics`);
    expect(response.status).toBe(200);
    expect(Number(warningsLine(await response.text(), 'queue_backlog'))).toBe(counted);
  });
});
