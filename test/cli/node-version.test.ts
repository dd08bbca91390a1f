// On a Node older than package.json's engines, the npm scripts' guard and the built CLI refuse at
// once with one line naming both versions, before loading anything that would crash there.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { nodeRefusal } from '../../src/cli/main.js';
import { cliEntry, repoRoot } from '../helpers/cli.js';

const script = join(repoRoot, 'scripts', 'require-node.mjs');
const range = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
const REFUSAL = /^cutover needs Node >= 22\.12; this is Node (\d+\.\d+\.\d+) \(install Node 22 from https:\/\/nodejs\.org\/ or with `nvm install 22`, and put it first on PATH\)$/;

function versionOf(node: string): string | undefined {
  const result = spawnSync(node, ['--version'], { encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim().replace(/^v/, '') : undefined;
}

/** A Node on this machine older than the engines range, if there is one (hosts often have 20). */
function oldNode(): { path: string; version: string } | undefined {
  const candidates = new Set(['/usr/bin/node', '/usr/local/bin/node', '/bin/node']);
  const which = spawnSync('which', ['-a', 'node'], { encoding: 'utf8' });
  for (const line of which.stdout?.split('\n') ?? []) if (line.trim()) candidates.add(line.trim());
  for (const path of candidates) {
    const version = versionOf(path);
    if (version && nodeRefusal(version, range)) return { path, version };
  }
  return undefined;
}

/** require-node.mjs's own nodeRefusal, run in a child (it is plain JavaScript without typings). */
function scriptRefusal(version: string): string {
  const code = `import { nodeRefusal } from ${JSON.stringify(pathToFileURL(script).href)}; process.stdout.write(String(nodeRefusal(${JSON.stringify(version)}, ${JSON.stringify(range)})));`;
  return execFileSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
}

describe('the Node version guard', () => {
  it('refuses a Node older than engines in one line naming both versions, and lets a newer one through', () => {
    expect(range).toBe('>=22.12');
    for (const refuse of [nodeRefusal('20.19.2', range), scriptRefusal('20.19.2'), nodeRefusal('v22.11.9', range), scriptRefusal('14.21.3')]) {
      expect(refuse).toMatch(REFUSAL);
    }
    expect(nodeRefusal('20.19.2', range)).toContain('this is Node 20.19.2 ');
    for (const pass of ['22.12.0', '22.23.3', '24.1.0', process.versions.node]) {
      expect(nodeRefusal(pass, range)).toBeUndefined();
      expect(scriptRefusal(pass)).toBe('undefined');
    }
  });

  it('stops the npm scripts and the built CLI at once under an older Node on this machine', () => {
    // Without an older Node here the check above, on faked versions, stands in for this one.
    const old = oldNode();
    // status names an unreachable server: should the guard let it through, it fails fast instead
    // of starting an embedded Postgres.
    const runs = old ? [[script], [cliEntry, 'status', '--database-url', 'postgres://127.0.0.1:1/none'], [cliEntry, '--help']] : [];
    for (const args of runs) {
      const result = spawnSync(old!.path, args, { cwd: repoRoot, encoding: 'utf8', timeout: 20_000 });
      expect(result.status, `${old!.path} ${args.join(' ')}: ${result.stderr}`).toBe(1);
      expect(result.stdout).toBe('');
      const lines = result.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(REFUSAL);
      expect(lines[0]).toContain(`this is Node ${old!.version} `);
    }
    // Under this run's Node the guard says nothing and lets the command go on.
    const passing = spawnSync(process.execPath, [script], { cwd: repoRoot, encoding: 'utf8' });
    expect(passing.status).toBe(0);
    expect(passing.stderr).toBe('');
  });
});
