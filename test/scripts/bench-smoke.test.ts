import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { repoRoot } from '../helpers/cli.js';

// `npm run bench` at its smallest scale, as CI runs it: every row must produce numbers. Timings
// are never asserted (this machine is shared with other test files); only that each row was
// measured: finite, positive medians and samples on both sides.

// The pooled rows need PgBouncer, which .ci/run installs and the README does not ask for.
const pooler = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer'].some((path) => existsSync(path));

const EXPECTED_ROWS = [
  'engine-vs-bare-4',
  'engine-vs-bare-16',
  'tracking-off-vs-bare',
  'mixed-vs-ideal',
  'mixed-vs-bare',
  'mixed-vs-legacy',
  'heavy-tail-vs-ideal',
  'heavy-tail-vs-bare',
  'many-slow-vs-ideal',
  'enqueue-vs-send',
  'enqueue-many-vs-insert',
  'enqueue-many-vs-floor',
  'migrate-vs-naive',
  'migrate-vs-insert',
  'migrate-vs-floor',
  'reconcile-vs-join',
  'pickup-p50',
  'pickup-p95',
  'engine-vs-legacy',
  'rss-per-job',
  ...(pooler ? ['pooled-enqueue', 'pooled-enqueue-many', 'pooled-engine-16'] : []),
];

interface Row {
  id: string;
  ours: number;
  reference: number;
  ratio: number;
  goal: string | null;
  pass: boolean | null;
  samples: { ours: number[]; reference: number[] };
}

let bench: ChildProcess | undefined;
let outDir: string | undefined;

afterAll(async () => {
  if (bench && bench.exitCode === null && bench.signalCode === null) {
    const exited = new Promise((resolve) => bench!.once('exit', resolve));
    bench.kill('SIGTERM');
    await exited;
  }
  if (outDir) await rm(outDir, { recursive: true, force: true });
});

function runBench(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, BENCH_DATABASE_URL: inject('adminDatabaseUrl') };
  for (const key of ['DATABASE_URL', 'PGBOSS_ROLLOUT_PERCENTAGE', 'USE_PGBOSS']) delete env[key];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'scripts', 'bench', 'run.mjs'), ...args], { cwd: repoRoot, env, stdio: ['ignore', 'ignore', 'pipe'] });
    bench = child;
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('npm run bench --scale small', () => {
  it(
    'produces finite positive numbers for every row, and says what machine it ran on',
    async () => {
      outDir = await mkdtemp(join(tmpdir(), 'cutover-bench-smoke-'));
      const out = join(outDir, 'results.json');
      const run = await runBench(['--scale', 'small', '--json-out', out]);
      expect(run.code, run.stderr.split('\n').slice(-30).join('\n')).toBe(0);

      const document = JSON.parse(await readFile(out, 'utf8')) as { machine: Record<string, unknown>; results: Row[] };
      expect(document.results.map((row) => row.id)).toEqual(EXPECTED_ROWS);
      for (const row of document.results) {
        const numbers = [row.ours, row.reference, row.ratio, ...row.samples.ours, ...row.samples.reference];
        expect(numbers.every((value) => Number.isFinite(value) && value > 0), `${row.id}: ${JSON.stringify(row)}`).toBe(true);
        expect(row.samples.ours.length, row.id).toBeGreaterThanOrEqual(3);
        expect(row.samples.reference.length, row.id).toBe(row.samples.ours.length);
        expect(row.goal, row.id).toEqual(expect.any(String));
        expect(typeof row.pass, row.id).toBe('boolean');
      }
      expect(document.machine).toMatchObject({ cpus: expect.any(Number), cpuModel: expect.any(String), totalMemoryBytes: expect.any(Number), postgres: expect.any(String), scale: 'small' });
      expect(document.machine.node).toBe(process.version);
    },
    15 * 60_000,
  );
});
