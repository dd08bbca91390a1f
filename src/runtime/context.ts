import type { ProjectConfig } from '../config/file.js';
import type { Database } from '../db/connect.js';
import { defaultActor } from '../state/audit.js';
import type { Config } from '../support/env.js';
import type { Logger } from '../support/log.js';

/**
 * What a process brings to the pieces it assembles: its settings, its logger, its database and
 * its stop signal. The CLI builds one per command (with what only a terminal needs on top).
 */
export interface RuntimeContext {
  config: Config;
  /** The cutover.config file: the legacy adapter, the job registry, the migrations directory. */
  project: ProjectConfig;
  log: Logger;
  db: Database;
  /** Aborted on SIGINT/SIGTERM: long-running work stops gracefully when it fires. */
  signal: AbortSignal;
  /** The command as typed, without options (`rollback`, `rollout set`): for messages that say what was refused. */
  command: string;
}

/** Who acts, for the audit log: the `--actor` given, else the OS user. */
export function actorOf(options: { actor?: string | undefined }): string {
  return options.actor ?? defaultActor();
}
