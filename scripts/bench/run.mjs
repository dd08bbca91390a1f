// The benchmark: every row side by side with its reference, in the same run, on the same fresh
// database; the median of `runs` runs after `warmups` warm-ups. Prints the table and writes
// bench-results/results.json (every row, its samples, and the machine).
//
//   node scripts/bench/run.mjs [--scale small|full] [--only NAME ...] [--json-out FILE] [--runs N] [--markdown] [--list]
//
// NAME is a suite (engine, mixed, enqueue, migrate, reconcile, pickup, legacy, memory, pooled
// (measured where PgBouncer is installed), and the opt-in workers-scaling and db-size) or one of
// its rows' ids; --only may repeat or take a comma list.
// --runs raises the number of measured runs (default 3) on a noisy machine.
import { mkdir, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Databases, stopWorkersOnSignal, withServer } from './lib.mjs';
import { machine, machineLine, markdownTable, summarize, textTable } from './report.mjs';
import engine from './suites/engine.mjs';
import enqueue from './suites/enqueue.mjs';
import legacy from './suites/legacy.mjs';
import memory from './suites/memory.mjs';
import migrate from './suites/migrate.mjs';
import mixed from './suites/mixed.mjs';
import pickup from './suites/pickup.mjs';
import pooled from './suites/pooled.mjs';
import reconcile from './suites/reconcile.mjs';
import { dbSize, workersScaling } from './suites/scaling.mjs';

const SUITES = [engine, mixed, enqueue, migrate, reconcile, pickup, legacy, memory, workersScaling, dbSize, pooled];
/** Both scales: one warm-up, then three measured runs; `small` shrinks what each run does. */
const SCALES = ['small', 'full'];
const WARMUPS = 1;

function usage(message) {
  process.stderr.write(`${message}\nusage: node scripts/bench/run.mjs [--scale small|full] [--only NAME ...] [--json-out FILE] [--runs N] [--markdown] [--list]\n`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    options: {
      scale: { type: 'string', default: 'full' },
      only: { type: 'string', multiple: true },
      'json-out': { type: 'string', default: 'bench-results/results.json' },
      runs: { type: 'string' },
      markdown: { type: 'boolean', default: false },
      list: { type: 'boolean', default: false },
    },
  }).values;
} catch (error) {
  usage(error.message);
}

if (args.list) {
  for (const suite of SUITES) {
    process.stdout.write(`${suite.name}${suite.optIn ? ' (only when named)' : ''}\n${suite.rows.map((row) => `  ${row.id}  ${row.name}\n`).join('')}`);
  }
  process.exit(0);
}
if (!SCALES.includes(args.scale)) usage(`--scale must be small or full, got '${args.scale}'`);
const only = (args.only ?? []).flatMap((name) => name.split(',')).filter(Boolean);
const known = new Set(SUITES.flatMap((suite) => [suite.name, ...suite.rows.map((row) => row.id)]));
const unknown = only.filter((name) => !known.has(name));
if (unknown.length) usage(`unknown benchmark '${unknown.join("', '")}'; one of: ${[...known].join(', ')}`);
const named = (suite) => only.includes(suite.name) || suite.rows.some((row) => only.includes(row.id));
const selected = SUITES.filter((suite) => (only.length ? named(suite) : !suite.optIn));

stopWorkersOnSignal();
const scale = args.scale;
const warmups = WARMUPS;
const runs = Number(args.runs ?? 3);
if (!Number.isInteger(runs) || runs < 3) usage(`--runs must be a whole number of at least 3 (a median needs them), got '${args.runs}'`);
const started = performance.now();
const loadAtStart = loadavg()[0];
const say = (text) => process.stderr.write(`${text}\n`);

const output = await withServer(async (adminUrl) => {
  const databases = new Databases(adminUrl);
  const results = [];
  try {
    for (const suite of selected) {
      const params = suite.params[scale];
      const suiteStart = performance.now();
      say(`bench ${suite.name}: ${warmups} warm-up, ${runs} runs (${scale})`);
      const context = { databases, params, scale };
      const state = suite.setup ? await suite.setup(context) : undefined;
      const samples = new Map(suite.rows.map((row) => [row.id, []]));
      try {
        for (let i = 0; i < warmups + runs; i++) {
          const warmup = i < warmups;
          const measured = await suite.once({ ...context, state, warmup, run: i });
          if (warmup) continue;
          for (const row of suite.rows) {
            const sample = measured[row.id];
            if (!sample) throw new Error(`${suite.name}: run ${i} produced no ${row.id}`);
            samples.get(row.id).push(sample);
          }
        }
      } finally {
        await suite.teardown?.(state);
      }
      const rows = suite.rows.map((row) => summarize(row, samples.get(row.id)));
      results.push(...rows);
      say(`${textTable(rows).split('\n').slice(2).join('\n')}\n  (${Math.round((performance.now() - suiteStart) / 1000)} s)`);
    }
  } finally {
    await databases.close();
  }
  return { machine: await machine(adminUrl, scale, loadAtStart), results };
});

const document = {
  machine: output.machine,
  runs: { warmups, runs, ratio: 'median of the per-run ratios (ours / reference, both measured in the same run)' },
  seconds: Math.round((performance.now() - started) / 1000),
  results: output.results,
};
const out = resolve(args['json-out']);
await mkdir(dirname(out), { recursive: true });
await writeFile(out, `${JSON.stringify(document, null, 2)}\n`);
process.stdout.write(`\n${args.markdown ? markdownTable(output.results) : textTable(output.results)}\n\n${machineLine(document)} Written to ${out}\n`);
