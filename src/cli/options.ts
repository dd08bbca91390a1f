import { Option } from 'commander';

/** `--registry <module>`, the job registry module a command loads instead of the config's. */
export function registryOption(description = 'job registry module (default: the demo jobs)'): Option {
  return new Option('--registry <module>', description);
}

/**
 * `--direct-url <url>`, the global option beside `--database-url`: a session to the same
 * database for LISTEN, `db migrate` and the locks of long commands, when `--database-url` is a
 * transaction pooler's (PgBouncer, Supabase's pooled port, Neon's pooled endpoint, RDS Proxy).
 */
export function directUrlOption(): Option {
  return new Option('--direct-url <url>', 'a direct (session) connection string beside a pooled --database-url, for LISTEN, db migrate and locks (default: DIRECT_URL, else --database-url)');
}
