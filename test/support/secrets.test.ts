import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/support/env.js';
import { UsageError } from '../../src/support/errors.js';
import { createLogger, redactSecrets } from '../../src/support/log.js';

// A password never reaches a terminal or a log line, whatever the shape of the string that
// carries it. Every input below holds the secret 's3cretpw' (encoded or not).
const SECRET = 's3cretpw';
const carriers: [string, string][] = [
  ['a postgresql URL', 'postgresql://admin:s3cretpw@db.example.com:5432/app'],
  ['a postgres URL', 'postgres://admin:s3cretpw@db/app'],
  ['another driver\'s scheme', 'postgresql+psycopg2://admin:s3cretpw@host/db'],
  ['a mysql URL', 'mysql://root:s3cretpw@h/db'],
  ['a JDBC URL with a user and a password', 'jdbc:postgresql://admin:s3cretpw@host/db'],
  ['no user', 'postgresql://:s3cretpw@host/db'],
  ['no scheme', 'admin:s3cretpw@host/db'],
  ['an encoded password', 'postgresql://admin:s3cretpw%2F%40x@host/db'],
  ['a raw @ and : in the password', 'postgresql://admin:x@y:s3cretpw@host/db'],
  ['libpq keywords', 'host=db port=5432 user=admin password=s3cretpw dbname=app'],
  ['libpq keywords, quoted with a space', "host=db password='s3c ret\\'pw s3cretpw' dbname=app"],
  ['a query parameter', 'postgresql://db/app?user=admin&password=s3cretpw&sslmode=require'],
  ['an env assignment', 'PGPASSWORD=s3cretpw'],
  ['a prefixed env assignment', 'DB_PASSWORD=s3cretpw'],
  ['JSON', '{"user":"admin","password":"s3cretpw"}'],
];

describe('redactSecrets', () => {
  it.each(carriers)('hides the password in %s', (_shape, text) => {
    const redacted = redactSecrets(`connect failed: ${text} (try again)`);
    expect(redacted).not.toContain(SECRET);
    expect(redacted).toMatch(/^connect failed: /);
    expect(redacted).toMatch(/\(try again\)$/);
  });

  it('keeps what is not a password', () => {
    expect(redactSecrets('postgresql://admin:s3cretpw@db.example.com:5432/app')).toBe('postgresql://admin:***@db.example.com:5432/app');
    expect(redactSecrets('cannot reach 127.0.0.1:5432/app: ECONNREFUSED')).toBe('cannot reach 127.0.0.1:5432/app: ECONNREFUSED');
    expect(redactSecrets('password authentication failed for user "admin"')).toBe('password authentication failed for user "admin"');
  });
});

describe('loadConfig', () => {
  const everyShape: [string, string][] = [...carriers, ['the bare secret', SECRET]];
  const rejected = everyShape.filter(([, text]) => !/^postgres(ql)?:\/\//.test(text));

  it.each(rejected)('names DATABASE_URL and the rule, never the value, for %s', (_shape, text) => {
    const attempt = () => loadConfig({ env: { DATABASE_URL: text } });
    expect(attempt).toThrow(UsageError);
    expect(attempt).toThrow(/^DATABASE_URL must be a postgres:\/\/ or postgresql:\/\/ connection string, got /);
    expect(attempt).not.toThrow(SECRET);
  });

  it.each(rejected)('names --database-url and the rule, never the value, for %s', (_shape, text) => {
    const attempt = () => loadConfig({ env: {}, databaseUrl: text });
    expect(attempt).toThrow(/^--database-url must be a postgres:\/\/ or postgresql:\/\/ connection string, got /);
    expect(attempt).not.toThrow(SECRET);
  });

  it('shows the scheme of a rejected URL, so the mistake can be seen', () => {
    expect(() => loadConfig({ env: { DATABASE_URL: 'postgresql+psycopg2://admin:s3cretpw@host/db' } })).toThrow(
      "DATABASE_URL must be a postgres:// or postgresql:// connection string, got a postgresql+psycopg2:// URL (the rest is not shown)",
    );
  });
});

describe('the logger', () => {
  function capture(): { lines: string[]; stream: Writable } {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    return { lines, stream };
  }

  it('hides a connection string quoted by an error, in its message, stack and cause', () => {
    const { lines, stream } = capture();
    const log = createLogger({ destination: stream, level: 'info' });
    const cause = new Error('bad URL mysql://root:s3cretpw@h/db');
    const error = Object.assign(new Error('connect to postgresql://admin:s3cretpw@db/app failed', { cause }), { detail: 'password=s3cretpw' });
    log.error({ err: error }, 'could not connect');
    log.warn(error);
    log.info({ reason: 'host=db password=s3cretpw', nested: { list: ['admin:s3cretpw@db'] } }, 'using %s', 'postgres://a:s3cretpw@b/c');
    expect(lines).toHaveLength(3);
    for (const line of lines) expect(line).not.toContain(SECRET);
    expect(JSON.parse(lines[0]!)).toMatchObject({ msg: 'could not connect', err: { message: expect.stringContaining('postgresql://admin:***@db/app') } });
    expect(JSON.parse(lines[1]!).msg).toContain('postgresql://admin:***@db/app failed');
  });
});
