import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { poolConfig } from '../db/pool.js';
import { RuntimeFailure } from '../support/errors.js';
import { redactSecrets, type Logger } from '../support/log.js';

/** What a worker serves with `--probe-port`; the Compose file and the Kubernetes manifests name the same paths. */
export const PROBE_PATHS = { live: '/livez', ready: '/readyz', startup: '/startupz' } as const;

/**
 * Every interface: in a container the kubelet (or Compose's healthcheck, or a load balancer)
 * reaches the probes on the pod's or container's address, never on its loopback, and the port
 * is only published where the deployment says so. The answers carry no secrets.
 */
export const DEFAULT_PROBE_HOST = '0.0.0.0';

/** How long one database check may take before it counts as unreachable: well under a probe's own timeout (1 s on Kubernetes by default, we set 3 s). */
export const PROBE_DATABASE_TIMEOUT_MS = 2000;

/** How long a database check's answer is reused, so that probes from several sources do not each cost a round trip. */
export const PROBE_CACHE_MS = 1000;

/** Throws when the database cannot be reached; resolves when it answered. */
export type DatabaseCheck = () => Promise<void>;

export interface DatabaseProbe {
  check: DatabaseCheck;
  close(): Promise<void>;
}

/**
 * `SELECT 1` on a pool of one connection of its own: a worker whose pool is busy with jobs is
 * still ready, and a check never waits behind them. A connection that times out is dropped
 * (pg's pool destroys a client released with an error), so a half-open one is not reused.
 */
export function databaseProbe(url: string, options: { timeoutMs?: number } = {}): DatabaseProbe {
  const timeoutMs = options.timeoutMs ?? PROBE_DATABASE_TIMEOUT_MS;
  const pool = new pg.Pool({ ...poolConfig(url, { max: 1, applicationName: 'cutover-probe' }), connectionTimeoutMillis: timeoutMs, query_timeout: timeoutMs, idleTimeoutMillis: 30_000 });
  pool.on('error', () => undefined);
  return {
    check: async () => void (await pool.query('SELECT 1')),
    close: () => pool.end(),
  };
}

export interface ProbeOptions {
  port: number;
  /** @defaultValue DEFAULT_PROBE_HOST */
  host?: string;
  /** Behind /readyz's "database reachable". */
  checkDatabase: DatabaseCheck;
  /** @defaultValue PROBE_CACHE_MS */
  cacheMs?: number;
  /** What the engine is called in reasons: "pg-boss", "the legacy runner". */
  engine: string;
  log: Logger;
  now?: () => number;
}

interface Answer {
  status: 200 | 503;
  body: Record<string, string>;
}

/**
 * The worker's health probes, in the Kubernetes sense:
 * - `/livez`: the process is alive and its event loop answers. Stays 200 while draining: a
 *   liveness failure restarts the container, which would cut the drain short.
 * - `/startupz`: 200 once the engine is started and the rollout flags are loaded.
 * - `/readyz`: started, the database reachable (cached for `cacheMs`), and not shutting down;
 *   503 with a one-line JSON reason otherwise, and from the moment the stop signal arrives.
 */
export class WorkerProbes {
  private engineStarted = false;
  private flagsLoaded = false;
  private draining = false;
  private lastCheck: { at: number; error: string | undefined } | undefined;
  private checking: Promise<string | undefined> | undefined;
  private server: Server | undefined;
  private readonly now: () => number;

  constructor(private readonly options: ProbeOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The engine took its first jobs' worth of setup: pg-boss started and working, or the legacy runner about to poll. */
  markEngineStarted(): void {
    this.engineStarted = true;
  }

  /** The flags this worker routes by are read (or it routes nothing: then at once). */
  markFlagsLoaded(): void {
    this.flagsLoaded = true;
  }

  /** The stop signal arrived: no new traffic, running jobs finish. */
  markDraining(): void {
    if (!this.draining) this.options.log.info('draining: /readyz answers 503 until the worker exits');
    this.draining = true;
  }

  private notStarted(): string | undefined {
    if (!this.engineStarted) return `${this.options.engine} not started yet`;
    if (!this.flagsLoaded) return 'rollout flags not loaded yet';
    return undefined;
  }

  /** The database check's answer, reused for `cacheMs`; concurrent probes share one check. */
  private async databaseProblem(): Promise<string | undefined> {
    const cacheMs = this.options.cacheMs ?? PROBE_CACHE_MS;
    if (this.lastCheck && this.now() - this.lastCheck.at < cacheMs) return this.lastCheck.error;
    this.checking ??= this.options
      .checkDatabase()
      .then(
        () => undefined,
        (error: unknown) => `database unreachable: ${redactSecrets(error instanceof Error ? error.message : String(error)).split('\n')[0]}`,
      )
      .then((error) => {
        this.lastCheck = { at: this.now(), error };
        return error;
      })
      .finally(() => (this.checking = undefined));
    return this.checking;
  }

  async answer(path: string): Promise<Answer | undefined> {
    switch (path) {
      case PROBE_PATHS.live:
        return { status: 200, body: { status: 'alive' } };
      case PROBE_PATHS.startup: {
        const reason = this.notStarted();
        return reason ? { status: 503, body: { status: 'starting', reason } } : { status: 200, body: { status: 'started' } };
      }
      case PROBE_PATHS.ready: {
        const reason = this.draining ? 'shutting down: running jobs are finishing' : (this.notStarted() ?? (await this.databaseProblem()));
        return reason ? { status: 503, body: { status: 'not ready', reason } } : { status: 200, body: { status: 'ready' } };
      }
      default:
        return undefined;
    }
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = new URL(request.url ?? '/', 'http://probe').pathname;
    if (request.method !== 'GET' && request.method !== 'HEAD') return send(response, 405, { status: 'method not allowed', reason: 'probes answer GET and HEAD' }, request.method);
    const answer = await this.answer(path);
    if (!answer) return send(response, 404, { status: 'not found', reason: `probes are ${Object.values(PROBE_PATHS).join(', ')}` }, request.method);
    send(response, answer.status, answer.body, request.method);
  }

  /** Listens on the port; a port taken or refused is a failure of the worker's start, said in one line. */
  async listen(): Promise<number> {
    const host = this.options.host ?? DEFAULT_PROBE_HOST;
    const server = createServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => {
        this.options.log.warn({ err: error }, 'a probe request failed');
        if (!response.headersSent) send(response, 500, { status: 'error', reason: 'the probe failed; see the worker log' }, request.method);
      });
    });
    // Probes are short requests; a client keeping its connection open must not hold the exit.
    server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(new RuntimeFailure(`cannot serve probes on ${host}:${this.options.port} (${error.code ?? error.message}): choose another --probe-port or --probe-host`, { cause: error })),
      );
      server.listen(this.options.port, host, () => resolve());
    });
    this.server = server;
    const { port } = server.address() as AddressInfo;
    this.options.log.info({ host, port, paths: Object.values(PROBE_PATHS) }, 'serving health probes');
    return port;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    const closed = new Promise((resolve) => server.close(resolve));
    server.closeAllConnections();
    await closed;
  }
}

function send(response: ServerResponse, status: number, body: Record<string, string>, method: string | undefined): void {
  const text = `${JSON.stringify(body)}\n`;
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  response.end(method === 'HEAD' ? undefined : text);
}
