import pg from 'pg';
import { expect } from 'vitest';
import type { CliResult } from '../helpers/cli.js';

/**
 * What the bad-input catalogue compares before and after a refused command: every table a
 * command could write, by count and by a digest of all its rows, and the tables that exist (a refused command must not create pg-boss's schema or a queue either).
 */
export interface DatabaseState {
  relations: string[];
  tables: Record<string, { rows: number; digest: string } | null>;
  queues: string[] | null;
}

/** Each table a refused command could write; compared row by row, every column. */
const WATCHED = ['"Job"', '"RolloutFlag"', '"RolloutEvent"', '"RolloutPlanRun"', '"ReconcileRun"', '"MigrationQuarantine"', 'pgboss.job', 'pgboss.queue'];

export async function databaseState(url: string): Promise<DatabaseState> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows: relations } = await client.query<{ name: string }>(
      `SELECT n.nspname || '.' || c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname IN ('public', 'pgboss') AND c.relkind IN ('r', 'p') ORDER BY 1`,
    );
    const tables: DatabaseState['tables'] = {};
    for (const table of WATCHED) {
      const { rows: exists } = await client.query<{ present: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS present`, [table]);
      if (!exists[0]?.present) {
        tables[table] = null;
        continue;
      }
      const { rows } = await client.query<{ n: string; digest: string | null }>(`SELECT count(*) AS n, md5(string_agg(t::text, ',' ORDER BY t::text)) AS digest FROM ${table} t`);
      tables[table] = { rows: Number(rows[0]!.n), digest: rows[0]!.digest ?? '' };
    }
    const queues = tables['pgboss.queue'] ? (await client.query<{ name: string }>(`SELECT name FROM pgboss.queue ORDER BY name`)).rows.map((r) => r.name) : null;
    return { relations: relations.map((r) => r.name), tables, queues };
  } finally {
    await client.end();
  }
}

/** The stderr lines that name a problem. */
export function problemLines(stderr: string): string[] {
  return stderr
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line);
}

export interface Refusal {
  code: 1 | 2 | 3;
  /** What the one stderr line says. */
  message: RegExp;
}

/** The contract for a refused command: its exit code, exactly one line naming the problem, no stack, nothing on stdout. */
export function expectRefused(result: CliResult, expected: Refusal): void {
  const lines = problemLines(result.stderr);
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(expected.message);
  expect(result.code, result.stderr).toBe(expected.code);
  expect(result.stderr).not.toMatch(/\n\s+at /);
  expect(result.stdout).toBe('');
}
