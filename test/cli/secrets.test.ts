import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

// The built CLI, as an operator runs it: a rejected connection string is named with the rule
// it breaks, on one line, exit 2, and its password appears nowhere.
describe('cutover with a connection string it rejects', () => {
  const cases: [string, string[], NodeJS.ProcessEnv][] = [
    ['DATABASE_URL of another driver', ['status'], { DATABASE_URL: 'postgresql+psycopg2://admin:s3cretpw@127.0.0.1/db' }],
    ['--database-url with a mysql scheme', ['status', '--database-url', 'mysql://root:s3cretpw@h/db'], { DATABASE_URL: '' }],
  ];

  it.each(cases)('%s: exit 2, one line, no password', async (_case, args, env) => {
    const result = await runCli(args, { env });
    expect(result.code).toBe(2);
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/^cutover: (DATABASE_URL|--database-url) must be a postgres:\/\/ or postgresql:\/\/ connection string/);
    expect(result.stdout).not.toContain('s3cretpw');
    expect(result.stderr).not.toContain('s3cretpw');
  });

  it('a mistyped option carrying a URL: commander quotes it, without the password', async () => {
    const result = await runCli(['status', '--databse-url=mysql://root:s3cretpw@h/db'], { env: { DATABASE_URL: '' } });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("unknown option '--databse-url=mysql://root:***@h/db'");
    expect(result.stdout + result.stderr).not.toContain('s3cretpw');
  });
});
