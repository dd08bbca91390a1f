// Generates the Prisma Client offline. `prisma generate` wants a schema engine binary only to
// exist (it never runs it for generation), and would otherwise try to download one.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (!existsSync(join(root, 'prisma', 'schema.prisma'))) process.exit(0);
const env = { ...process.env, PRISMA_HIDE_UPDATE_MESSAGE: '1', CHECKPOINT_DISABLE: '1' };
env.PRISMA_SCHEMA_ENGINE_BINARY ??= process.execPath;
const prismaCli = join(root, 'node_modules', 'prisma', 'build', 'index.js');
const result = spawnSync(process.execPath, [prismaCli, 'generate'], { cwd: root, env, stdio: ['ignore', 'ignore', 'inherit'] });
if (result.status !== 0) {
  process.stderr.write('prisma generate failed\n');
  process.exit(result.status ?? 1);
}
