import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// DESIGN §2: data flows one way, CLI → demo → plans → ops → engines and routing → table →
// jobs → db. A module may import its own floor or a lower one, never a higher one; the three
// rooms on the engines' floor are peers that know nothing of each other.
const FLOORS: Record<string, number> = {
  cli: 7,
  demo: 6,
  dashboard: 6,
  plans: 5,
  ops: 4,
  legacy: 3,
  pgboss: 3,
  rollout: 3,
  table: 2,
  // Running one job in a child process: the executor, the child's entry and their protocol,
  // shared by both engines (legacy runs every job so, pg-boss the types that ask for it).
  isolation: 2,
  'config-file': 2,
  jobs: 1,
  db: 0,
  generated: 0,
  config: 0,
  errors: 0,
  log: 0,
  modules: 0,
  paths: 0,
  duration: 0,
};
const PEERS = new Set(['legacy', 'pgboss', 'rollout']);

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

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
      } else if (PEERS.has(from) && PEERS.has(to)) {
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
    ['rollout/manager.ts', "import { rollback } from '../ops/rollback.js';", 'rollout may not import ops'],
    ['rollout/flags.ts', "export { run } from '../plans/plan-runner.js';", 'rollout may not import plans'],
    ['ops/migrate.ts', "const m = await import('../plans/plan.js');", 'ops may not import plans'],
    ['table/table.ts', "import { BossWorker } from '../pgboss/worker.js';", 'table may not import pgboss'],
    ['table/rows.ts', "import {\n  flipToLegacy,\n} from '../ops/rollback.sql.js';", 'table may not import ops'],
  ])('catches %s importing upwards or sideways: %s', (file, line, rule) => {
    const violations = layeringViolations(new Map([[join(SRC, file), line]]));
    expect(violations.map((violation) => violation.rule)).toEqual([expect.stringContaining(rule)]);
  });

  it('allows imports downwards and within a room', () => {
    const files = new Map([
      [join(SRC, 'plans/plan-runner.ts'), "import { rollback } from '../ops/rollback.js';\nimport { gates } from './gates.js';"],
      [join(SRC, 'pgboss/worker.ts'), "import { placeResult } from '../table/table.js';\nimport { messageOf } from '../errors.js';"],
    ]);
    expect(layeringViolations(files)).toEqual([]);
  });
});
