// The benchmark's results: each row's medians, its verdict against the goal, the table printed
// and the JSON written, with the machine it ran on.
import { cpus, loadavg, totalmem } from 'node:os';
import { median, withClient } from './lib.mjs';

const compare = { '>=': (a, b) => a >= b, '<=': (a, b) => a <= b };

/** A row from its samples: medians of each side, the median of the per-run ratios, the verdict. */
export function summarize(row, samples) {
  const ours = median(samples.map((sample) => sample.ours));
  const reference = median(samples.map((sample) => sample.reference));
  const ratio = median(samples.map((sample) => sample.ours / sample.reference));
  const { goal } = row;
  let pass = null;
  if (goal?.ratio) {
    pass = compare[goal.ratio[0]](ratio, goal.ratio[1]);
    if (goal.ours) pass &&= compare[goal.ours[0]](ours, goal.ours[1]);
  }
  return {
    id: row.id,
    name: row.name,
    unit: row.unit,
    ours,
    reference,
    ratio,
    goal: goal?.text ?? null,
    pass,
    ...(row.sides ? { sides: row.sides } : {}),
    samples: { ours: samples.map((sample) => sample.ours), reference: samples.map((sample) => sample.reference) },
    ...(samples.some((sample) => sample.detail) ? { detail: samples.map((sample) => sample.detail ?? null) } : {}),
  };
}

/** Three significant figures, thousands separated: 2,012 / 0.934 / 14.2k stays 14,200. */
export function figure(value) {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Ratios: whole numbers from 10, two decimals from 0.1, else two significant figures. */
function ratioFigure(ratio) {
  if (ratio >= 10) return ratio.toFixed(0);
  if (ratio >= 0.1) return ratio.toFixed(2);
  return ratio.toPrecision(2);
}

const verdict = (pass) => (pass === null ? 'info' : pass ? 'pass' : 'MISS');

export function tableRows(results) {
  return results.map((row) => [
    row.name,
    `${figure(row.ours)} ${row.unit}`,
    `${figure(row.reference)} ${row.unit}`,
    `${ratioFigure(row.ratio)}×`,
    row.goal ?? '—',
    verdict(row.pass),
  ]);
}

const HEADER = ['measure', 'ours', 'reference', 'ratio', 'goal', 'result'];

export function textTable(results) {
  const rows = tableRows(results);
  const widths = HEADER.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i].length)));
  const line = (cells) => cells.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd();
  return [line(HEADER), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** The same as a Markdown table, for the README. */
export function markdownTable(results) {
  const rows = tableRows(results);
  return [`| ${HEADER.join(' | ')} |`, `|${HEADER.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');
}

/**
 * What the numbers depend on: the machine, Postgres (and its durability settings), Node, and
 * how busy the machine was (1-minute load average at the start and the end of the run).
 */
export async function machine(adminUrl, scale, loadAtStart) {
  const settings = await withClient(adminUrl, async (client) => {
    const { rows } = await client.query(
      `SELECT name, current_setting(name) AS setting FROM pg_settings WHERE name IN ('server_version', 'fsync', 'synchronous_commit', 'shared_buffers', 'max_connections', 'wal_level')`,
    );
    return Object.fromEntries(rows.map((row) => [row.name, row.setting]));
  });
  const cpu = cpus();
  return {
    cpus: cpu.length,
    cpuModel: cpu[0]?.model ?? 'unknown',
    totalMemoryBytes: totalmem(),
    postgres: settings.server_version,
    postgresSource: process.env.BENCH_DATABASE_URL ? 'BENCH_DATABASE_URL' : 'embedded',
    postgresSettings: settings,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    date: new Date().toISOString(),
    loadAverage: { start: loadAtStart, end: loadavg()[0] },
    scale,
  };
}

/** One line on what produced a results document. */
export function machineLine({ machine: m, runs, seconds }) {
  return (
    `${m.cpus} × ${m.cpuModel}, ${Math.round(m.totalMemoryBytes / 2 ** 30)} GiB RAM, PostgreSQL ${m.postgres} (${m.postgresSource}, fsync ${m.postgresSettings.fsync}), ` +
    `Node ${m.node}; scale ${m.scale}, median of ${runs.runs} runs after ${runs.warmups} warm-up; ${seconds} s, ${m.date.slice(0, 10)}` +
    (m.loadAverage ? `, load average ${m.loadAverage.start.toFixed(1)} → ${m.loadAverage.end.toFixed(1)}.` : '.')
  );
}
