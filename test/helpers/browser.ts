// The browser the dashboard's browser test drives, found through the project's own install so
// that `npm test` needs nothing beyond Node: playwright-core brings no browser of its own, and
// its own download (`playwright install`) needs a CDN that a machine may not reach.
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { chromium, type Browser, type LaunchOptions } from 'playwright-core';

/** Where a browser came from, in the order they are tried. */
export type BrowserSource = 'CUTOVER_TEST_BROWSER' | 'npm' | 'system' | 'playwright';

export interface TestBrowser {
  source: BrowserSource;
  executablePath: string;
  /** One line for the run's output: which browser, from where. */
  description: string;
  launchOptions: LaunchOptions;
}

export type BrowserResolution = { found: true; browser: TestBrowser } | { found: false; reason: string };

/** The names a Chromium or Chrome goes by on PATH (Debian, Ubuntu, Google's packages). */
const SYSTEM_NAMES = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'];
const SOURCES = ['npm', 'system', 'playwright'] as const;
const ENV = 'CUTOVER_TEST_BROWSER';

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * @sparticuz/chromium (a devDependency) ships a Chromium build inside its npm tarball and
 * unpacks it to the temp directory. It also ships the NSS libraries that build links against
 * (for Amazon Linux, where they are missing; they are missing on a bare Debian too): unpacked
 * beside it and put first on the browser's library path, the build needs only libc and expat.
 */
async function npmBuild(): Promise<TestBrowser | string> {
  let module: typeof import('@sparticuz/chromium');
  try {
    module = await import('@sparticuz/chromium');
  } catch {
    return '@sparticuz/chromium is not installed (a production install leaves devDependencies out)';
  }
  // Its exports leave package.json out: found from the entry, build/index.js.
  const root = dirname(dirname(createRequire(import.meta.url).resolve('@sparticuz/chromium')));
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  const executablePath = await module.default.executablePath();
  const libraries = join(await module.inflate(join(root, 'bin', 'al2023.tar.br')), 'lib');
  const libraryPath = [libraries, process.env.LD_LIBRARY_PATH].filter(Boolean).join(delimiter);
  const env: NodeJS.ProcessEnv = { ...process.env, LD_LIBRARY_PATH: libraryPath };
  // Under the C locale (LANG=C.UTF-8, usual in containers) this build reports navigator.language
  // as en-US@posix, a tag that Intl rejects: the dashboard's formatting would throw.
  const locale = env.LC_ALL || env.LANG;
  if (!locale || /^(C|POSIX)([.@]|$)/.test(locale)) {
    delete env.LC_ALL;
    env.LANG = 'en_US.UTF-8';
  }
  return {
    source: 'npm',
    executablePath,
    description: `Chromium from @sparticuz/chromium ${version} (${executablePath})`,
    // Its own headless GL: the build has no GPU stack to find on the machine.
    launchOptions: { executablePath, args: ['--use-gl=angle', '--use-angle=swiftshader', '--enable-unsafe-swiftshader'], env },
  };
}

function systemBrowser(): TestBrowser | string {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const name of SYSTEM_NAMES) {
    for (const dir of dirs) {
      const executablePath = join(dir, name);
      if (isExecutable(executablePath)) return { source: 'system', executablePath, description: `${name} on this machine (${executablePath})`, launchOptions: { executablePath } };
    }
  }
  return `none of ${SYSTEM_NAMES.join(', ')} is on PATH`;
}

function playwrightBrowser(): TestBrowser | string {
  // Where `npx playwright install chromium` puts the build this playwright-core expects.
  const executablePath = chromium.executablePath();
  if (existsSync(executablePath)) return { source: 'playwright', executablePath, description: `playwright's Chromium (${executablePath})`, launchOptions: { executablePath } };
  return `playwright's Chromium is not installed (${executablePath})`;
}

async function fromSource(source: (typeof SOURCES)[number]): Promise<TestBrowser | string> {
  try {
    if (source === 'npm') return await npmBuild();
    if (source === 'system') return systemBrowser();
    return playwrightBrowser();
  } catch (error) {
    // A build that will not unpack is a miss to report, not a crash of the run's setup.
    return `${source}: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/**
 * The browser for the tests: CUTOVER_TEST_BROWSER if set (a browser's path, or one of `npm`,
 * `system`, `playwright` to use that source alone); else the npm-shipped build; else a Chromium
 * or Chrome on PATH; else playwright's own download where it is installed.
 */
export async function resolveTestBrowser(env: NodeJS.ProcessEnv = process.env): Promise<BrowserResolution> {
  const wanted = env[ENV]?.trim();
  let sources: readonly (typeof SOURCES)[number][] = SOURCES;
  if (wanted) {
    if ((SOURCES as readonly string[]).includes(wanted)) {
      sources = [wanted as (typeof SOURCES)[number]];
    } else {
      if (!isAbsolute(wanted) || !isExecutable(wanted)) return { found: false, reason: `${ENV}=${wanted} is neither an executable's absolute path nor one of ${SOURCES.join(', ')}` };
      return { found: true, browser: { source: ENV, executablePath: wanted, description: `${wanted} from ${ENV}`, launchOptions: { executablePath: wanted } } };
    }
  }
  const misses: string[] = [];
  for (const source of sources) {
    const result = await fromSource(source);
    if (typeof result !== 'string') return { found: true, browser: result };
    misses.push(result);
  }
  return { found: false, reason: `no browser for the dashboard's browser test: ${misses.join('; ')}` };
}

/** Launches the tests' browser, or fails with the one-line reason none was found. */
export async function launchTestBrowser(): Promise<Browser> {
  const resolution = await resolveTestBrowser();
  if (!resolution.found) throw new Error(resolution.reason);
  return chromium.launch(resolution.browser.launchOptions);
}
