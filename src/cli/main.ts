#!/usr/bin/env node
// The `cutover` binary. It checks the Node version before it loads anything else: the commands
// (program.ts) import commander and the engines, which crash on an older Node with errors that
// name neither version. Only node: built-ins are imported statically here.
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ProgramIo } from './program.js';

export type { ProgramIo } from './program.js';

/**
 * The one-line refusal for Node `found` ("20.19.2") against package.json's engines range
 * `range` (">=22.12"), or undefined when it is new enough. scripts/require-node.mjs says the
 * same for the npm scripts; it is not in the published package, so the check lives here too.
 */
export function nodeRefusal(found: string, range: string): string | undefined {
  const match = /(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(range);
  if (!match) return undefined;
  const wanted = [Number(match[1]), Number(match[2] ?? 0), Number(match[3] ?? 0)];
  const version = found.replace(/^v/, '');
  const have = version.split('.').map(Number);
  for (let i = 0; i < 3; i += 1) {
    const part = have[i] ?? 0;
    const least = wanted[i] ?? 0;
    if (part > least) return undefined;
    if (part < least) {
      const shown = wanted[2] ? wanted.join('.') : `${wanted[0]}.${wanted[1]}`;
      return `cutover needs Node >= ${shown}; this is Node ${version} (install Node ${wanted[0]} from https://nodejs.org/ or with \`nvm install ${wanted[0]}\`, and put it first on PATH)`;
    }
  }
  return undefined;
}

/** package.json's engines.node: the same file from src/cli and from dist/cli. */
function enginesRange(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { engines?: { node?: string } };
  return manifest.engines?.node ?? '';
}

/** program.ts's runProgram, loaded on first use so that importing this module stays light. */
export async function runProgram(argv: readonly string[], io: ProgramIo): Promise<number> {
  const program = await import('./program.js');
  return program.runProgram(argv, io);
}

/** Run as the binary (directly or through npm's bin link), not imported. */
function isEntryPoint(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return realpathSync(script) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  const refusal = nodeRefusal(process.versions.node, enginesRange());
  if (refusal) {
    process.stderr.write(`${refusal}\n`);
    process.exitCode = 1;
  } else {
    process.exitCode = await runProgram(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: process.env, cwd: process.cwd() });
    // Everything is closed by now; should a stray handle keep the loop alive, don't hang the shell.
    setTimeout(() => process.exit(), 5000).unref();
  }
}
