import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import fastifyCookie from '@fastify/cookie';
import fastifyCsrf from '@fastify/csrf-protection';
import fastifyStatic from '@fastify/static';
import { fastify, type FastifyReply, type FastifyRequest } from 'fastify';
import { CutoverError, messageOf, RuntimeFailure } from '../support/errors.js';
import { redactSecrets } from '../support/log.js';
import { packageRoot } from '../support/paths.js';
import { abortPlanAction, setKillSwitchAction, setPercentAction, WriteNotPermittedError, type ActionContext } from './actions.js';
import { allowedHosts, isLoopback, sameOrigin, tokenMatches } from './guard.js';
import { PROMETHEUS_CONTENT_TYPE, renderPrometheus } from './prometheus.js';
import type { Snapshots } from './snapshot.js';
import { errorCode } from '../support/pg-errors.js';

/** The page's files, served as they are: no build step, nothing from a CDN. */
const PUBLIC_DIR = join(packageRoot, 'src', 'dashboard', 'public');
/** uPlot's own files, from node_modules, so a closed operator network needs nothing else. */
const UPLOT_DIR = dirname(createRequire(import.meta.url).resolve('uplot'));

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

export interface DashboardOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  snapshots: Snapshots;
  actions: ActionContext;
  /** The write token; null keeps the dashboard read-only. */
  token: string | null;
  refreshSeconds: number;
  /** A running @pg-boss/dashboard, linked for per-job detail. */
  pgbossDashboardUrl: string | null;
}

export interface DashboardServer {
  url: string;
  close(): Promise<void>;
}

/** HTTP status of an error, and what the page may be told about it (never a connection string). */
function describeError(error: unknown): { status: number; message: string } {
  if (error instanceof WriteNotPermittedError) return { status: 403, message: error.message };
  if (error instanceof CutoverError) return { status: error.exitCode === 2 ? 400 : error.exitCode === 1 ? 409 : 503, message: redactSecrets(error.message) };
  const status = (error as { statusCode?: unknown }).statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) return { status, message: redactSecrets(messageOf(error)) };
  return { status: 500, message: "internal error: see the dashboard's log" };
}

export async function startDashboard(options: DashboardOptions): Promise<DashboardServer> {
  const { snapshots, actions, token } = options;
  const log = actions.log;
  const app = fastify({ logger: false, bodyLimit: 16 * 1024 });
  await app.register(fastifyCookie);
  await app.register(fastifyCsrf, { cookieOpts: { path: '/', sameSite: 'strict', httpOnly: true } });
  await app.register(fastifyStatic, { root: PUBLIC_DIR, prefix: '/', cacheControl: false });
  await app.register(fastifyStatic, { root: UPLOT_DIR, prefix: '/vendor/', decorateReply: false, cacheControl: false, allowedPath: (path) => /^\/uPlot\.(esm\.js|min\.css)$/.test(path) });

  let hosts: ReadonlySet<string> | null | undefined;
  app.addHook('onRequest', async (request, reply) => {
    hosts ??= allowedHosts(options.host, (app.server.address() as AddressInfo).port);
    if (hosts && !hosts.has(request.headers.host ?? '')) return reply.code(421).send({ error: 'unknown Host: open the dashboard by the address it printed' });
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.headers(SECURITY_HEADERS);
    return payload;
  });
  app.setErrorHandler((error, request, reply) => {
    const { status, message } = describeError(error);
    if (status >= 500) log.error({ err: error, url: request.url }, 'dashboard request failed');
    return reply.code(status).send({ error: message });
  });

  app.get('/api/session', async (_request, reply) => ({
    writes: token !== null,
    // The CSRF secret goes in a SameSite cookie; the token that must match it only to this page.
    csrfToken: token === null ? null : reply.generateCsrf(),
    refreshSeconds: options.refreshSeconds,
    pgbossDashboardUrl: options.pgbossDashboardUrl,
  }));

  app.get('/api/snapshot', async () => snapshots.get());

  app.get('/metrics', async (_request, reply) => {
    const text = await renderPrometheus(await snapshots.metrics());
    return reply.type(PROMETHEUS_CONTENT_TYPE).send(text);
  });

  /**
   * Every write: refused unless writes are allowed, then unless the request is same-origin,
   * carries the token, and carries the session's CSRF token (the last check is the plugin's).
   */
  const guardWrite = async (request: FastifyRequest, reply: FastifyReply) => {
    if (token === null) return reply.code(403).send({ error: 'the dashboard is read-only: start it with --allow-writes to change flags or abort plans from the page' });
    if (!sameOrigin(request.headers.origin, request.headers.host)) return reply.code(403).send({ error: 'cross-origin write refused' });
    if (!tokenMatches(token, request.headers.authorization)) return reply.code(401).send({ error: 'a write needs the token the dashboard printed when it started (or CUTOVER_DASHBOARD_TOKEN)' });
  };
  const write = <T>(path: string, run: (body: Record<string, unknown>) => Promise<T>) =>
    app.post(path, { onRequest: [guardWrite, app.csrfProtection] }, async (request) => {
      const body = typeof request.body === 'object' && request.body !== null ? (request.body as Record<string, unknown>) : {};
      try {
        return await run(body);
      } finally {
        snapshots.invalidate();
      }
    });
  write('/api/flags/percent', (body) => setPercentAction(actions, body));
  write('/api/flags/kill', (body) => setKillSwitchAction(actions, body));
  write('/api/plans/abort', (body) => abortPlanAction(actions, body));

  let address: string;
  try {
    address = await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    await app.close();
    const code = errorCode(error);
    throw new RuntimeFailure(
      code === 'EADDRINUSE' ? `port ${options.port} on ${options.host} is in use: pick another with --port` : `cannot listen on ${options.host}:${options.port}: ${messageOf(error)}`,
      { cause: error },
    );
  }
  const { port } = app.server.address() as AddressInfo;
  if (!isLoopback(options.host)) log.warn({ host: options.host }, 'the dashboard is reachable from the network: anyone who reaches it can read it');
  const shown = options.host.includes(':') ? `[${options.host}]` : options.host === '0.0.0.0' || options.host === '::' ? 'localhost' : options.host;
  log.debug({ address }, 'dashboard listening');
  return { url: `http://${shown}:${port}/`, close: () => app.close() };
}
