import { randomBytes } from 'node:crypto';
import { cp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createEmptyDatabase, createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { repoRoot, runCli } from '../helpers/cli.js';

const ADOPTING = '## 7. Adopting your table';

/**
 * The `cutover` commands of the runbook's `sh` blocks, in order: those for cutover's generic
 * table, or those of the section on adopting your own table.
 */
async function runbookCommands(part: 'generic' | 'adopting' = 'generic'): Promise<string[]> {
  const text = await readFile(join(repoRoot, 'RUNBOOK.md'), 'utf8');
  const split = text.indexOf(ADOPTING);
  expect(split).toBeGreaterThan(0);
  const section = part === 'generic' ? text.slice(0, split) : text.slice(split);
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1]!);
  return blocks.flatMap((block) => block.split('\n').map((line) => line.trim()).filter((line) => line.startsWith('cutover ')));
}

/** Shell-like splitting of one line: double quotes group words. */
function argv(line: string): string[] {
  return [...line.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!).slice(1);
}

let database: TestDatabase;
beforeAll(async () => (database = await createTestDatabase()));
afterAll(async () => database.drop());

describe('RUNBOOK.md', () => {
  it('has commands to run', async () => {
    expect((await runbookCommands()).length).toBeGreaterThan(15);
  });

  it('every command in its sh blocks runs and succeeds against a real database', async () => {
    for (const line of await runbookCommands()) {
      const result = await runCli([...argv(line), '--yes', '--database-url', database.url]);
      expect(result.code, `${line}\n${result.stderr}`).toBe(0);
    }
  });

  it('every command of "Adopting your table" runs and succeeds on the example table, from its directory', async () => {
    const commands = await runbookCommands('adopting');
    expect(commands).toContain('cutover init');
    const adopted = await createEmptyDatabase();
    const example = join(repoRoot, 'examples', 'evaluation-table');
    // Inside the repository, so the example config's `import 'cutover'` resolves to this package.
    const project = join(repoRoot, '.test-tmp', `runbook-${randomBytes(4).toString('hex')}`);
    try {
      await cp(example, project, { recursive: true });
      const client = new pg.Client({ connectionString: adopted.url });
      await client.connect();
      try {
        await client.query(await readFile(join(example, 'schema.sql'), 'utf8'));
        await client.query(`INSERT INTO "Job" (id, "evaluationId", "updatedAt") VALUES ('ckrunbook0001', 'ev-1', now()), ('ckrunbook0002', 'ev-2', now())`);
      } finally {
        await client.end();
      }
      for (const line of commands) {
        const result = await runCli([...argv(line), '--yes', '--database-url', adopted.url], { cwd: project });
        expect(result.code, `${line}\n${result.stderr}`).toBe(0);
      }
    } finally {
      await rm(project, { recursive: true, force: true });
      await adopted.drop();
    }
  });
});
