// `npm start`: build when the compiled CLI is missing or older than its sources, then run the
// given cutover command, or by default the main job.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist', 'cli', 'main.js');

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

const sourcesChanged = () =>
  Math.max(newestMtime(join(root, 'src')), statSync(join(root, 'prisma', 'schema.prisma')).mtimeMs) > statSync(entry).mtimeMs;

function run(command, args) {
  const result = spawnSync(command, args, { cwd: process.cwd(), stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

if (!existsSync(entry) || sourcesChanged()) run('npm', ['run', '--silent', 'build']);
const args = process.argv.slice(2);
run(process.execPath, [entry, ...(args.length ? args : ['demo'])]);
