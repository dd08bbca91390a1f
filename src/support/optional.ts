import { RuntimeFailure } from './errors.js';

/**
 * A feature needs a package that cutover leaves to whoever uses the feature (an optional peer
 * dependency: the embedded Postgres binaries, Prisma Client 7), and it is not installed. The
 * message is one line that says what to install.
 */
export class MissingPackageError extends RuntimeFailure {
  constructor(
    readonly feature: string,
    readonly packages: readonly string[],
    options?: ErrorOptions & { hint?: string },
  ) {
    super(`${feature} needs ${packages.join(' and ')}: npm install ${packages.join(' ')}${options?.hint ? ` (${options.hint})` : ''}`, options);
  }
}

/** Whether `name` resolves from cutover's own place in node_modules, without loading it. */
export function isInstalled(name: string): boolean {
  try {
    import.meta.resolve(name);
    return true;
  } catch {
    return false;
  }
}
