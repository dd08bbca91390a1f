import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// DESIGN §2: data flows one way, CLI → dashboard, demo → plans → runtime → the operator rooms →
// the engines and routing → config → the team's table, child processes, cutover's own state and
// pg-boss's schema → jobs → db → support. A module may import its own room or a lower floor, never
// a higher one; rooms that share a floor are peers and know nothing of each other, except where a
// floor says so below.
const FLOORS: Record<string, number> = {
  cli: 11,
  demo: 10,
  dashboard: 10,
  plans: 9,
  // What a long-running process assembles: pools, engines, heartbeat, schedules, sweeps, notifier.
  runtime: 8,
  // finalize asks the drain report whether anything still keeps the legacy runner alive.
  moves: 7,
  checks: 6,
  reconcile: 6,
  notify: 6,
  adopt: 6,
  observe: 6,
  legacy: 5,
  pgboss: 5,
  rollout: 5,
  // The project's cutover.config: the adapter and the job registry it names.
  config: 4,
  table: 3,
  // Running one job in a child process, shared by both engines.
  isolation: 3,
  // cutover's own tables: flags, audit, heartbeats, the schema check.
  state: 3,
  // Every statement on pg-boss's tables, and the pg-boss versions they were tested against.
  'pgboss-schema': 3,
  jobs: 2,
  db: 1,
  generated: 1,
  support: 0,
};
/** Rooms on one floor that may not import each other. */
const PEER_FLOORS = new Set([FLOORS.legacy, FLOORS.checks]);

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../src');

/** The room of a file under src: its top folder, or a root file's name without extension. */
function roomOf(file: string): string {
  const [first = '', second] = relative(SRC, file).split(sep);
  return second === undefined ? first.replace(/\.[cm]?[jt]s$/, '') : first;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^'"]*?\bfrom\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

function relativeImports(source: string): string[] {
  return [...source.matchAll(IMPORT)].map((match) => match[1] ?? match[2] ?? '').filter((spec) => spec.startsWith('.'));
}

export interface Violation {
  file: string;
  imports: string;
  rule: string;
}

/** Every import in `files` (path → source) that runs against the floors. */
export function layeringViolations(files: ReadonlyMap<string, string>): Violation[] {
  const violations: Violation[] = [];
  for (const [file, source] of files) {
    const from = roomOf(file);
    if (from === 'index') continue; // the public API re-exports from every room
    for (const spec of relativeImports(source)) {
      const to = roomOf(resolve(dirname(file), spec));
      if (to === from) continue;
      const fromFloor = FLOORS[from];
      const toFloor = FLOORS[to];
      const where = { file: relative(SRC, file), imports: spec };
      if (fromFloor === undefined || toFloor === undefined) {
        violations.push({ ...where, rule: `room '${fromFloor === undefined ? from : to}' has no floor in the layering test` });
      } else if (toFloor > fromFloor) {
        violations.push({ ...where, rule: `${from} may not import ${to}, which sits above it` });
      } else if (toFloor === fromFloor && PEER_FLOORS.has(fromFloor)) {
        violations.push({ ...where, rule: `${from} and ${to} are peers and may not import each other` });
      }
    }
  }
  return violations;
}

function sourceFiles(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    const path = join(entry.parentPath, entry.name);
    if (entry.isFile() && /\.ts$/.test(entry.name) && !path.includes(`${sep}generated${sep}`)) {
      files.set(path, readFileSync(path, 'utf8'));
    }
  }
  return files;
}

describe('layering', () => {
  it('every import in src runs downwards, and the engines and routing never import each other', () => {
    expect(layeringViolations(sourceFiles(SRC))).toEqual([]);
  });

  it.each([
    ['pgboss/worker.ts', "import { x } from '../legacy/runner.js';", 'pgboss and legacy are peers'],
    ['legacy/runner.ts', "import type { X } from '../pgboss/worker.js';", 'legacy and pgboss are peers'],
    ['reconcile/fix.ts', "import { migrateBacklog } from '../moves/migrate.js';", 'reconcile may not import moves'],
    ['observe/status.ts', "import { preflight } from '../checks/preflight.js';", 'observe and checks are peers'],
    ['rollout/manager.ts', "import { rollback } from '../moves/rollback.js';", 'rollout may not import moves'],
    ['state/flags.ts', "export { run } from '../plans/plan-runner.js';", 'state may not import plans'],
    ['moves/migrate.ts', "const m = await import('../runtime/schedules.js');", 'moves may not import runtime'],
    ['table/table.ts', "import { BossWorker } from '../pgboss/worker.js';", 'table may not import pgboss'],
    ['pgboss-schema/settle.ts', "import { affected } from '../pgboss/boss.js';", 'pgboss-schema may not import pgboss'],
    ['table/rows.ts', "import {\n  flipToLegacy,\n} from '../moves/rollback.sql.js';", 'table may not import moves'],
    ['support/errors.ts', "import type { Pool } from '../db/pool.js';", 'support may not import db'],
    ['runtime/worker.ts', "import { registerWorker } from '../cli/worker.js';", 'runtime may not import cli'],
    ['ops/migrate.ts', "import { x } from '../db/pool.js';", "room 'ops' has no floor"],
  ])('catches %s importing upwards or sideways: %s', (file, line, rule) => {
    const violations = layeringViolations(new Map([[join(SRC, file), line]]));
    expect(violations.map((violation) => violation.rule)).toEqual([expect.stringContaining(rule)]);
  });

  it('allows imports downwards and within a room', () => {
    const files = new Map([
      [join(SRC, 'plans/plan-runner.ts'), "import { rollback } from '../moves/rollback.js';\nimport { gates } from './gates.js';"],
      [join(SRC, 'pgboss/worker.ts'), "import { placeResult } from '../table/table.js';\nimport { messageOf } from '../support/errors.js';"],
      [join(SRC, 'moves/finalize.ts'), "import { drainReport } from '../checks/drain-report.js';"],
    ]);
    expect(layeringViolations(files)).toEqual([]);
  });
});
