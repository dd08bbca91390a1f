// Run first by `npm test`, `npm start`, `npm run build`, `bench` and `chaos`: on a Node older than
// package.json's engines, exit 1 at once with one line naming both versions, instead of a
// build and minutes of tests that end in an unrelated crash (npm itself only warns at install).
// Plain JavaScript with no dependencies, written to parse and run on Node 14 and later.
import { readFileSync, realpathSync } from 'fs';
import { fileURLToPath } from 'url';

/** The lowest version an engines range like ">=22.12" allows, as [major, minor, patch]. */
export function lowestAllowed(range) {
  const match = /(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(range);
  if (!match) throw new Error('cannot read the Node version out of engines.node "' + range + '"');
  return [Number(match[1]), Number(match[2] || 0), Number(match[3] || 0)];
}

/** The refusal line for Node `found` ("20.19.2") against engines range `range`, or undefined. */
export function nodeRefusal(found, range) {
  const wanted = lowestAllowed(range);
  const have = String(found).replace(/^v/, '').split('.').map(Number);
  for (let i = 0; i < 3; i += 1) {
    const part = have[i] || 0;
    if (part > wanted[i]) return undefined;
    if (part < wanted[i]) {
      const shown = wanted[2] ? wanted.join('.') : wanted[0] + '.' + wanted[1];
      return 'cutover needs Node >= ' + shown + '; this is Node ' + String(found).replace(/^v/, '') +
        ' (install Node ' + wanted[0] + ' from https://nodejs.org/ or with `nvm install ' + wanted[0] + '`, and put it first on PATH)';
    }
  }
  return undefined;
}

function engines() {
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
  return manifest.engines.node;
}

function runDirectly() {
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (runDirectly()) {
  const refusal = nodeRefusal(process.versions.node, engines());
  if (refusal) {
    process.stderr.write(refusal + '\n');
    process.exit(1);
  }
}
