import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const execFileAsync = promisify(execFile);
const PGBOUNCER = '/usr/sbin/pgbouncer';

export interface PgBouncer {
  /** The server URL given (same user, password and database) with host and port swapped for PgBouncer's. */
  url: string;
  port: number;
  /** Any URL of the same server (another test database), rewritten to go through PgBouncer. */
  urlFor(databaseUrl: string): string;
  /** The PgBouncer log so far, for a failing test's message. */
  log(): Promise<string>;
  stop(): Promise<void>;
}

export interface PgBouncerOptions {
  /** The Postgres to sit in front of (a superuser's URL: PgBouncer logs in with its password). */
  serverUrl: string;
  /**
   * Server connections per database and user: small, so that clients really do share them and
   * two statements of one client land on different backends.
   * @defaultValue 4
   */
  poolSize?: number;
  /**
   * Startup parameters PgBouncer drops instead of refusing the client. None by default: cutover
   * must send no `options`, and the tests prove it by leaving PgBouncer's refusal on.
   * @defaultValue []
   */
  ignoreStartupParameters?: string[];
}

// src/support/net.ts's freePort, copied: this file runs under Node's type stripping (the chaos run,
// the bench), which cannot load src's modules by their .js names.
async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * A real PgBouncer (Debian's 1.18, installed by .ci/run when missing) in `pool_mode =
 * transaction` in front of a Postgres (the tests', the chaos run's), on a free port, with its ini, auth file, pid file
 * and log in a temp dir. Every database of the server is reachable through it under its own
 * name. Clients are trusted by PgBouncer, which logs in to the server itself with the password
 * of the URL (from its auth file). PgBouncer refuses to run as root: as root it runs as the
 * `postgres` user (the embedded server's user, created by then).
 */
export async function startPgBouncer(options: PgBouncerOptions): Promise<PgBouncer> {
  if (!existsSync(PGBOUNCER)) throw new Error(`${PGBOUNCER} is missing: apt-get install pgbouncer (.ci/run does so as root)`);
  const serverUrl = new URL(options.serverUrl);
  const user = decodeURIComponent(serverUrl.username) || 'postgres';
  const password = decodeURIComponent(serverUrl.password);
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'cutover-pgbouncer-'));
  const ini = join(dir, 'pgbouncer.ini');
  const auth = join(dir, 'userlist.txt');
  const logFile = join(dir, 'pgbouncer.log');
  const host = serverUrl.hostname.replace(/^\[|\]$/g, '');
  const lines = [
    '[databases]',
    // A wildcard: every database name the client asks for, on the same server.
    `* = host=${host} port=${serverUrl.port || '5432'}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    // No Unix socket: a second PgBouncer in the same run would collide on /tmp/.s.PGSQL.<port>.
    'unix_socket_dir =',
    'pool_mode = transaction',
    'auth_type = trust',
    `auth_file = ${auth}`,
    `logfile = ${logFile}`,
    `pidfile = ${join(dir, 'pgbouncer.pid')}`,
    'max_client_conn = 1000',
    `default_pool_size = ${options.poolSize ?? 4}`,
    'min_pool_size = 0',
    'reserve_pool_size = 0',
    'max_db_connections = 0',
    // A client waits for a server connection instead of failing while the pool is busy.
    'query_wait_timeout = 60',
    'server_login_retry = 1',
    ...(options.ignoreStartupParameters?.length ? [`ignore_startup_parameters = ${options.ignoreStartupParameters.join(',')}`] : []),
    '',
  ];
  await writeFile(ini, lines.join('\n'));
  await writeFile(auth, `"${user.replace(/"/g, '""')}" "${password.replace(/"/g, '""')}"\n`);
  await chmod(dir, 0o755);

  const args = [ini];
  if (userInfo().uid === 0) {
    const { stdout } = await execFileAsync('id', ['-u', 'postgres']);
    const { stdout: gid } = await execFileAsync('id', ['-g', 'postgres']);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
    await chown(ini, Number(stdout.trim()), Number(gid.trim()));
    await chown(auth, Number(stdout.trim()), Number(gid.trim()));
    args.unshift('-u', 'postgres');
  }
  await chmod(auth, 0o600);

  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const child: ChildProcess = spawn(PGBOUNCER, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const gone = new Promise<void>((resolveGone) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolveGone();
    }),
  );

  const urlFor = (databaseUrl: string): string => {
    const parsed = new URL(databaseUrl);
    parsed.hostname = '127.0.0.1';
    parsed.port = String(port);
    return parsed.toString();
  };
  const url = urlFor(serverUrl.toString());
  const readLog = async (): Promise<string> => `${stderr}${await readFile(logFile, 'utf8').catch(() => '')}`;
  const stop = async (): Promise<void> => {
    if (!exited) {
      // SIGTERM is PgBouncer's immediate shutdown (SIGINT would wait for its clients to leave).
      child.kill('SIGTERM');
      await gone;
    }
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 15_000;
  while (!(await canConnect(url))) {
    if (exited || Date.now() > deadline) {
      const log = await readLog();
      await stop();
      throw new Error(`PgBouncer did not start (${exited ? `exited ${exited.code ?? exited.signal}` : 'no answer in 15 s'}):\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, port, urlFor, log: readLog, stop };
}
