import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { repoRoot, runCli } from '../helpers/cli.js';

/** The `cutover` commands of the runbook's `sh` blocks, in order. */
async function runbookCommands(): Promise<string[]> {
  const text = await readFile(join(repoRoot, 'RUNBOOK.md'), 'utf8');
  const blocks = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1]!);
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
});
