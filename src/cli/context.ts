import type { Command } from 'commander';
import { loadConfig, type Config } from '../support/env.js';
import { loadConfigFile } from '../config/file.js';
import { openDatabase, type Database } from '../db/connect.js';
import { createLogger, type Logger } from '../support/log.js';
import type { RuntimeContext } from '../runtime/context.js';
import { assertPrintable } from './parse.js';
import { cliIo, logDestination } from './output.js';

export { actorOf } from '../runtime/context.js';

export interface GlobalOptions {
  config?: string;
  databaseUrl?: string;
  /** A session for what a transaction pooler cannot carry (directUrlOption). */
  directUrl?: string;
  json?: boolean;
  yes?: boolean;
  verbose?: boolean;
}

/** A command's runtime context, and how it wants its answers. */
export interface CommandContext extends RuntimeContext {
  json: boolean;
  yes: boolean;
}

export function globalOptions(command: Command): GlobalOptions {
  return command.optsWithGlobals<GlobalOptions>();
}

/**
 * Logs go to stderr: readable lines when a person watches it (a terminal), JSON lines when a
 * program reads it (piped, redirected, CI) or when `--json` asks for machine output throughout.
 */
export function contextLogger(options: GlobalOptions, config?: Config, terminal = cliIo().stderr.isTTY === true, env: NodeJS.ProcessEnv = cliIo().env): Logger {
  const level = options.verbose ? 'debug' : (config?.logLevel ?? 'info');
  const pretty = terminal && options.json !== true;
  // https://no-color.org: set and not empty means no colour; a dumb terminal shows escapes as text.
  const colorize = !env.NO_COLOR && env.TERM !== 'dumb';
  return createLogger({ level, ...logDestination(), ...(pretty ? { pretty: { colorize } } : {}) });
}

/** `rollout set`, `worker`: the command's names from the program down, without the program's. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let current: Command | null = command; current?.parent; current = current.parent) names.unshift(current.name());
  return names.join(' ');
}

/**
 * Every option value and argument is one plain line of text: a value with a terminal escape
 * or a line break would be written to the audit log (`--actor`, `--reason`) and replayed on
 * the next operator's terminal by `rollout history`, or forge a line in a log. Arguments may
 * span lines (a pretty-printed JSON payload) but carry no other control character.
 */
function assertPlainInput(command: Command): void {
  for (let current: Command | null = command; current; current = current.parent) {
    for (const option of current.options) {
      const value: unknown = current.getOptionValue(option.attributeName());
      const values = Array.isArray(value) ? value : [value];
      for (const item of values) if (typeof item === 'string') assertPrintable(option.long ?? option.flags, item, { multiline: false });
    }
  }
  for (const [index, arg] of command.args.entries()) {
    const name = command.registeredArguments[index]?.name() ?? `argument ${index + 1}`;
    assertPrintable(`<${name}>`, arg, { multiline: true });
  }
}

/**
 * Runs one command with its config, logger and database, and always releases them: the
 * embedded Postgres this process started is stopped on success, failure, or a signal.
 * A first Ctrl-C asks the command to stop; a second one stops at once.
 */
export async function withContext<T>(command: Command, run: (context: CommandContext) => Promise<T>, settings: { waitForDatabaseSeconds?: number } = {}): Promise<T> {
  const options = globalOptions(command);
  assertPlainInput(command);
  const project = await loadConfigFile(options.config, cliIo().cwd);
  const config = loadConfig({
    env: cliIo().env,
    cwd: cliIo().cwd,
    ...(options.databaseUrl === undefined ? {} : { databaseUrl: options.databaseUrl }),
    ...(options.directUrl === undefined ? {} : { directUrl: options.directUrl }),
  });
  const log = contextLogger(options, config);
  const controller = new AbortController();
  let db: Database | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      log.warn({ signal }, 'second signal: stopping now');
      void (db?.close() ?? Promise.resolve()).finally(() => process.exit(130));
      return;
    }
    log.info({ signal }, 'stopping (again to force)');
    controller.abort(new Error(`received ${signal}`));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    db = await openDatabase(config, log, settings.waitForDatabaseSeconds ? { seconds: settings.waitForDatabaseSeconds, signal: controller.signal } : null);
    return await run({
      config,
      project,
      log,
      db,
      json: options.json ?? false,
      yes: options.yes ?? false,
      signal: controller.signal,
      command: commandPath(command),
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await db?.close();
  }
}
