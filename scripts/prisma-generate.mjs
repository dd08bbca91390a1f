// Generates the Prisma Client offline, in a checkout of cutover (`npm install` runs it through
// `prepare`, and `npm run build`); an installed package ships the client compiled in dist/ and
// never runs this. `prisma generate` wants a schema engine binary only to exist (it never runs
// it for generation), and would otherwise try to download one.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const output = join(root, 'src', 'generated', 'prisma');
const require = createRequire(join(root, 'package.json'));

function resolveOrExplain(name) {
  try {
    return require.resolve(name);
  } catch {
    process.stderr.write(`prisma generate needs the ${name.split('/')[0]} devDependency: run npm install in ${root}\n`);
    process.exit(1);
  }
}

const prismaCli = join(dirname(resolveOrExplain('prisma/package.json')), 'build', 'index.js');
const env = { ...process.env, PRISMA_HIDE_UPDATE_MESSAGE: '1', CHECKPOINT_DISABLE: '1' };
env.PRISMA_SCHEMA_ENGINE_BINARY ??= process.execPath;
const result = spawnSync(process.execPath, [prismaCli, 'generate'], { cwd: root, env, stdio: ['ignore', 'ignore', 'inherit'] });
if (result.status !== 0) {
  process.stderr.write('prisma generate failed\n');
  process.exit(result.status ?? 1);
}

// createPrisma loads the generated client with require() when first called, so that importing
// cutover never loads Prisma. From dist/ that is tsc's output; from the sources (the tests) it
// is this plain-JavaScript copy beside each generated .ts file, which TypeScript and Vite both
// pass over for the .ts.
const ts = require(resolveOrExplain('typescript'));
function transpile(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) transpile(path);
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
      const { outputText } = ts.transpileModule(readFileSync(path, 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
        fileName: path,
      });
      writeFileSync(path.replace(/\.ts$/, '.js'), outputText);
    }
  }
}
if (existsSync(output)) transpile(output);
