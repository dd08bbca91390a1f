import { pathToFileURL } from 'node:url';

const TYPESCRIPT = /\.[cm]?tsx?$/;

/**
 * Imports a team's module (config, job registry) by absolute path. TypeScript goes through
 * jiti, so a team's `cutover.config.ts` works without a build step; JavaScript loads natively.
 */
export async function importUserModule(absolute: string): Promise<Record<string, unknown>> {
  if (TYPESCRIPT.test(absolute)) {
    // Loaded only when needed: a legacy job process with a JavaScript registry never pays for it.
    const { createJiti } = await import('jiti');
    const jiti = createJiti(import.meta.url);
    return (await jiti.import(absolute)) as Record<string, unknown>;
  }
  return (await import(pathToFileURL(absolute).href)) as Record<string, unknown>;
}
