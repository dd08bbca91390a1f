import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/cli.js';

const tscBin = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const fixture = join(repoRoot, 'test', 'types', 'typed-api.ts');
const DIRECTIVE = /^\s*\/\/ @ts-expect-error\b/;

/** tsc over one tsconfig: its exit code and what it printed. */
async function tsc(project: string): Promise<{ code: number; output: string }> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [tscBin, '--noEmit', '-p', project], { cwd: repoRoot, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, output: stdout };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : -1, output: `${failed.stdout ?? ''}${failed.stderr ?? ''}` };
  }
}

// Outside the project's own tsconfig (which includes test/): a copy that must fail would fail `npm run typecheck`.
const scratch = join(repoRoot, '.test-tmp', `types-${randomBytes(4).toString('hex')}`);
afterAll(() => rm(scratch, { recursive: true, force: true }));

describe('a typed registry types enqueue and the adapter', () => {
  it('compiles the fixture: correct calls pass, and every wrong name or payload is the error its @ts-expect-error expects', async () => {
    const { code, output } = await tsc(join(repoRoot, 'test', 'types', 'tsconfig.json'));
    expect(output).toBe('');
    expect(code).toBe(0);
  }, 120_000);

  it('without its @ts-expect-error lines the fixture fails, at exactly the lines they marked', async () => {
    const lines = (await readFile(fixture, 'utf8')).split('\n');
    const marked = lines.flatMap((line, index) => (DIRECTIVE.test(line) ? [index + 2] : [])); // 1-based, the line after
    expect(marked.length).toBeGreaterThanOrEqual(8);
    await mkdir(scratch, { recursive: true });
    // Each directive becomes an empty comment, so line numbers stay as they are.
    await writeFile(join(scratch, 'typed-api.ts'), lines.map((line) => line.replace(/\/\/ @ts-expect-error.*$/, (match) => (DIRECTIVE.test(line) ? '//' : match))).join('\n'));
    await writeFile(join(scratch, 'tsconfig.json'), JSON.stringify({ extends: join(repoRoot, 'tsconfig.json'), compilerOptions: { noEmit: true }, include: [], files: ['typed-api.ts'] }));
    const { code, output } = await tsc(join(scratch, 'tsconfig.json'));
    expect(code).not.toBe(0);
    const failing = [...output.matchAll(/typed-api\.ts\((\d+),\d+\): error/g)].map((match) => Number(match[1]));
    expect([...new Set(failing)].sort((a, b) => a - b)).toEqual(marked);
  }, 120_000);
});
