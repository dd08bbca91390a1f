// The dashboard, driven in a real headless browser (through playwright-core; test/helpers/browser.ts
// finds it, by default the Chromium build an npm devDependency ships) against a database with a
// dual run in progress.
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import pg from 'pg';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { roleName } from '../../src/adopt/roles.js';
import { launchTestBrowser } from '../helpers/browser.js';
import { runCliInProcess } from '../helpers/cli.js';
import { useEngineFixture } from '../helpers/fixture.js';
import { DEMO_REGISTRY, EVALUATION, seedDualRun, startDashboardCli, stopDashboard, type DualRun, type RunningDashboard } from './dashboard.shared.js';

const fixture = useEngineFixture({ registry: DEMO_REGISTRY });
let browser: Browser;
let dashboard: RunningDashboard | undefined;
let run: DualRun;

beforeAll(async () => {
  // No skip: without a browser this file fails, with the one-line reason none was found.
  browser = await launchTestBrowser();
});
afterAll(async () => {
  await browser?.close();
});
beforeEach(async () => {
  run = await seedDualRun({ ...fixture, url: fixture.database.url });
});
afterEach(async () => {
  if (dashboard) await stopDashboard(dashboard);
  dashboard = undefined;
});

interface Opened {
  page: Page;
  /** Console errors and uncaught page errors, as they come. */
  errors: string[];
}

async function open(url: string): Promise<Opened> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(message.text());
  });
  page.on('pageerror', (error) => errors.push(`uncaught: ${error.message}`));
  await page.goto(url);
  await page.waitForSelector('body[data-loaded=true]');
  return { page, errors };
}

const cell = (page: Page, name: string) => page.locator(`[data-cell="${name}"]`).textContent();
/** The text of the first match, or '' while there is none (for expect.poll). */
const text = async (page: Page, selector: string) => ((await page.locator(selector).count()) ? ((await page.locator(selector).first().textContent()) ?? '') : '');

/** Pixels of a chart's canvas drawn in a series colour (legacy #c2410c, pg-boss #1d4ed8). */
async function seriesPixels(page: Page, chart: string): Promise<{ legacy: number; pgboss: number }> {
  return page.evaluate((id) => {
    // Runs in the page; typed here without pulling the DOM library into the whole test program.
    interface Canvas {
      width: number;
      height: number;
      getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
    }
    const page = globalThis as unknown as { document: { querySelector(selector: string): Canvas | null } };
    const canvas = page.document.querySelector(`#${id} canvas`);
    if (!canvas) return { legacy: -1, pgboss: -1 };
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    const near = (i: number, [r, g, b]: number[]) => Math.abs(data[i]! - r!) + Math.abs(data[i + 1]! - g!) + Math.abs(data[i + 2]! - b!) < 40 && data[i + 3]! > 200;
    let legacy = 0;
    let pgboss = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (near(i, [0xc2, 0x41, 0x0c])) legacy += 1;
      if (near(i, [0x1d, 0x4e, 0xd8])) pgboss += 1;
    }
    return { legacy, pgboss };
  }, chart);
}

/** A raw HTTP request, so tests can send what a browser never would (a foreign Host header). */
function rawRequest(url: string, options: { method?: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; body: string; cookie: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers }, (response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body, cookie: /_csrf=[^;]+/.exec(String(response.headers['set-cookie'] ?? ''))?.[0] ?? '' }));
    });
    request.on('error', reject);
    request.end(options.body);
  });
}

describe('cutover dashboard in a browser', () => {
  it('shows the dual run: routing, plan gates, counts per type and engine, charts with data, last reconcile, audit log', async () => {
    dashboard = await startDashboardCli(fixture.database.url);
    expect(dashboard.writes).toBe(false);
    expect(dashboard.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const { page, errors } = await open(dashboard.url);

    await expect(page.locator('#mode').textContent()).resolves.toBe('read-only');
    await expect(cell(page, `${EVALUATION}/route`)).resolves.toBe('50 %');
    await expect(cell(page, `${EVALUATION}/kill`)).resolves.toBe('off');
    await expect(cell(page, 'import.article/route')).resolves.toBe('0 %');
    const planCell = page.locator(`[data-plan="ramp"]`);
    await expect(planCell.textContent()).resolves.toMatch(/ramp: running step 1\/2/);
    await page.waitForSelector('[data-gate="minSamples"]');
    await expect(page.locator('[data-gate="minSamples"]').textContent()).resolves.toBe('minSamples: inconclusive — pg-boss 0, legacy 5 finished jobs (need 3 each)');

    const expected: Record<string, string> = {
      [`${EVALUATION}/LEGACY/waiting`]: String(run.waiting.LEGACY),
      [`${EVALUATION}/PGBOSS/waiting`]: String(run.waiting.PGBOSS),
      [`${EVALUATION}/LEGACY/running`]: '1',
      [`${EVALUATION}/PGBOSS/running`]: '0',
      // 3 plus the retried chain's completion; its first, retried attempt is no failure of the job.
      [`${EVALUATION}/LEGACY/completed`]: '4',
      [`${EVALUATION}/LEGACY/failed`]: '1',
      [`${EVALUATION}/PGBOSS/completed`]: '5',
      [`${EVALUATION}/PGBOSS/failed`]: '2',
      [`${EVALUATION}/PGBOSS/dead-lettered`]: '2',
      [`${EVALUATION}/LEGACY/dead-lettered`]: '—',
      ['import.article/LEGACY/completed']: '1',
      ['notification.send/LEGACY/waiting']: '1',
    };
    for (const [name, value] of Object.entries(expected)) await expect(cell(page, name), name).resolves.toBe(value);

    for (const chart of ['chart-completions', 'chart-failures', 'chart-latency']) {
      await expect(page.locator(`#${chart} canvas`).count(), chart).resolves.toBe(1);
      expect(Number(await page.locator(`#${chart}`).getAttribute('data-points')), chart).toBeGreaterThan(0);
      const drawn = await seriesPixels(page, chart);
      expect(drawn.pgboss, `${chart}: pg-boss series drawn`).toBeGreaterThan(0);
      expect(drawn.legacy, `${chart}: legacy series drawn`).toBeGreaterThan(0);
    }

    await expect(page.locator('[data-findings]').getAttribute('data-findings')).resolves.toBe('1');
    await expect(page.locator('[data-finding="orphan"]').textContent()).resolves.toBe('1');
    await expect(page.locator('#events tr[data-action="flag.set"][data-actor="test"]').count()).resolves.toBe(1);
    await expect(page.locator('#events tr[data-action="plan.start"]').count()).resolves.toBe(1);
    // Read-only: no write controls on the page, and the server refuses writes whatever is sent.
    await expect(page.locator('.controls').count()).resolves.toBe(0);
    const refused = await rawRequest(`${dashboard.url}api/flags/kill`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: EVALUATION, on: true }) });
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body).error).toMatch(/read-only: start it with --allow-writes/);
    // Ids and types only: no payload contents, no connection string.
    const html = await page.content();
    expect(html).not.toContain('doc-1');
    expect(html).not.toContain(fixture.database.url);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('refuses a write without the token; with it, changes the flag, kills, aborts the plan, each audited as dashboard and listed', async () => {
    dashboard = await startDashboardCli(fixture.database.url, ['--allow-writes']);
    expect(dashboard.token).toMatch(/^[\w-]{32}$/);
    const { page, errors } = await open(dashboard.url);
    await expect(page.locator('#mode').textContent()).resolves.toBe('writes allowed');
    const row = page.locator(`#routing tr[data-type="${EVALUATION}"]`);

    // No token: the server refuses, the page says why, nothing changes.
    await row.locator('input[type=number]').fill('25');
    await row.locator('button[data-action=percent]').click();
    await expect.poll(() => text(page, '#write-status.refused')).toMatch(/refused \(401\): a write needs the token/);
    expect((await fixture.pool.query(`SELECT "basisPoints" FROM "RolloutFlag" WHERE "jobType" = $1`, [EVALUATION])).rows[0]).toEqual({ basisPoints: 5000 });
    // The browser reports the refused request; that is the only error the page has shown.
    expect(errors.length).toBe(1);
    expect(errors[0]).toMatch(/status of 401/);
    errors.length = 0;

    // The printed link carries the token in its fragment (never sent to the server, never logged).
    await page.goto(`${dashboard.url}#token=${dashboard.token}`);
    await page.waitForSelector('body[data-loaded=true]');
    await expect.poll(() => text(page, '#token-state')).toBe('a token is set for this tab');
    await row.locator('input[type=number]').fill('25');
    await row.locator('button[data-action=percent]').click();
    await expect.poll(() => text(page, '#write-status.done')).toBe(`${EVALUATION}: 25 % of new jobs to pg-boss`);
    await expect.poll(() => text(page, `[data-cell="${EVALUATION}/route"]`)).toBe('25 %');
    await expect.poll(() => text(page, '#events tr[data-action="flag.set"][data-actor="dashboard"]')).toContain('50 % → 25 %');

    await row.locator('button[data-action=kill]').click();
    await expect.poll(() => text(page, `[data-cell="${EVALUATION}/kill"]`)).toBe('ON');
    await expect.poll(() => text(page, '#events tr[data-action="flag.kill"][data-actor="dashboard"]')).toContain('kill switch ON');
    await expect.poll(() => text(page, `#routing tr[data-type="${EVALUATION}"] button[data-action=kill]`)).toBe('Release kill switch');

    page.once('dialog', (dialog) => void dialog.accept());
    await row.locator('button[data-action=abort]').click();
    await expect.poll(() => text(page, '#write-status.done'), { timeout: 30_000 }).toMatch(/plan ramp aborted/);
    await expect.poll(() => page.locator('#events tr[data-action="plan.aborted"][data-actor="dashboard"]').count()).toBe(1);

    const { rows } = await fixture.pool.query<{ action: string; actor: string }>(`SELECT action, actor FROM "RolloutEvent" WHERE actor = 'dashboard' ORDER BY id`);
    expect(rows.map((r) => r.action)).toEqual(expect.arrayContaining(['flag.set', 'flag.kill', 'plan.aborted']));
    const flag = (await fixture.pool.query(`SELECT "basisPoints", "killSwitch" FROM "RolloutFlag" WHERE "jobType" = $1`, [EVALUATION])).rows[0];
    expect(flag).toEqual({ basisPoints: 2500, killSwitch: true });
    const plan = (await fixture.pool.query(`SELECT state FROM "RolloutPlanRun"`)).rows[0];
    expect(plan).toEqual({ state: 'aborted' });
    expect(errors).toEqual([]);
    await page.close();
  });
});

/** A write session as the page gets one: the CSRF token and the cookie holding its secret. */
async function writeSession(base: string): Promise<{ csrfToken: string; cookie: string }> {
  const session = await rawRequest(`${base}api/session`, {});
  return { csrfToken: (JSON.parse(session.body) as { csrfToken: string }).csrfToken, cookie: session.cookie };
}

describe('cutover dashboard over HTTP', () => {
  it('takes the token from CUTOVER_DASHBOARD_TOKEN, and refuses writes that lack the CSRF token, come from another origin or name another Host', async () => {
    const token = 'a-token-the-operator-chose-1234';
    dashboard = await startDashboardCli(fixture.database.url, ['--allow-writes'], { CUTOVER_DASHBOARD_TOKEN: token });
    expect(dashboard.token).toBeUndefined();
    const base = dashboard.url;
    const host = new URL(base).host;
    const kill = (headers: Record<string, string>) =>
      rawRequest(`${base}api/flags/kill`, { method: 'POST', headers: { 'content-type': 'application/json', host, ...headers }, body: JSON.stringify({ type: EVALUATION, on: true }) });

    const session = await rawRequest(`${base}api/session`, { headers: { host } });
    const { csrfToken } = JSON.parse(session.body) as { csrfToken: string };
    const { cookie } = session;
    expect(csrfToken).toBeTruthy();
    expect(cookie).toBeTruthy();

    expect((await kill({ authorization: `Bearer ${token}` })).status).toBe(403); // no CSRF token or cookie
    expect((await kill({ authorization: `Bearer ${token}`, 'x-csrf-token': 'forged', cookie })).status).toBe(403);
    expect((await kill({ authorization: 'Bearer wrong-token-wrong-token', 'x-csrf-token': csrfToken, cookie })).status).toBe(401);
    expect((await kill({ authorization: `Bearer ${token}`, 'x-csrf-token': csrfToken, cookie, origin: 'http://evil.example' })).status).toBe(403);
    expect((await rawRequest(`${base}api/snapshot`, { headers: { host: `evil.example:${new URL(base).port}` } })).status).toBe(421);
    expect((await fixture.pool.query(`SELECT 1 FROM "RolloutFlag" WHERE "killSwitch"`)).rowCount).toBe(0);

    const accepted = await kill({ authorization: `Bearer ${token}`, 'x-csrf-token': csrfToken, cookie, origin: `http://${host}` });
    expect(accepted.status, accepted.body).toBe(200);
    const event = (await fixture.pool.query(`SELECT actor, action, "jobType" FROM "RolloutEvent" ORDER BY id DESC LIMIT 1`)).rows[0];
    expect(event).toEqual({ actor: 'dashboard', action: 'flag.kill', jobType: EVALUATION });
  });

  it("reads under the dashboard's read-only role, and there refuses writes, naming the operator's grants", async () => {
    const prefix = `d${randomBytes(4).toString('hex')}_`;
    const login = `${prefix}viewer`;
    const roles = await runCliInProcess(['init', '--roles', '--role-prefix', prefix]);
    expect(roles.code, roles.stderr).toBe(0);
    await fixture.pool.query(roles.stdout);
    await fixture.pool.query(`CREATE ROLE ${login} LOGIN PASSWORD 'viewer-password' IN ROLE ${roleName('dashboard', prefix)}`);
    try {
      const url = new URL(fixture.database.url);
      url.username = login;
      url.password = 'viewer-password';
      const token = 'a-token-for-a-read-only-role';
      dashboard = await startDashboardCli(url.toString(), ['--allow-writes'], { CUTOVER_DASHBOARD_TOKEN: token });
      const snapshot = await rawRequest(`${dashboard.url}api/snapshot`, {});
      expect(snapshot.status, snapshot.body).toBe(200);
      expect(JSON.parse(snapshot.body).plans[0].gates.status).toBe('inconclusive');
      const { csrfToken, cookie } = await writeSession(dashboard.url);
      const refused = await rawRequest(`${dashboard.url}api/flags/kill`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'x-csrf-token': csrfToken, cookie },
        body: JSON.stringify({ type: EVALUATION, on: true }),
      });
      expect(refused.status).toBe(403);
      expect(JSON.parse(refused.body).error).toBe("the database refused the kill switch to the dashboard's role: writes from the dashboard need the operator's grants (group role cutover_operator in `cutover init --roles`)");
      expect((await fixture.pool.query(`SELECT 1 FROM "RolloutFlag" WHERE "killSwitch"`)).rowCount).toBe(0);
    } finally {
      if (dashboard) await stopDashboard(dashboard);
      dashboard = undefined;
      // Roles belong to the server, not the test's database: dropped here, with what they were granted.
      const admin = new pg.Client({ connectionString: fixture.database.url });
      await admin.connect();
      try {
        await admin.query(`DROP OWNED BY ${login}, ${roleName('dashboard', prefix)}`);
        await admin.query(`DROP ROLE IF EXISTS ${login}`);
        for (const component of ['producer', 'legacy-runner', 'pgboss-worker', 'operator', 'dashboard'] as const) {
          await admin.query(`DROP OWNED BY ${roleName(component, prefix)}`);
          await admin.query(`DROP ROLE IF EXISTS ${roleName(component, prefix)}`);
        }
      } finally {
        await admin.end();
      }
    }
  });
});
