import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { inject } from 'vitest';

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

async function admin<T>(run: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: inject('adminDatabaseUrl') });
  await client.connect();
  try {
    return await run(client);
  } finally {
    await client.end();
  }
}

async function create(template?: string): Promise<TestDatabase> {
  const name = `cutover_test_${randomBytes(6).toString('hex')}`;
  const sql = `CREATE DATABASE ${name}${template ? ` TEMPLATE ${template}` : ''}`;
  await admin(async (client) => {
    // The template refuses connections, so nothing should hold it; should something still do
    // (55006: "source database is being accessed by other users"), wait for it to let go.
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await client.query(sql);
      } catch (error) {
        if ((error as { code?: string }).code !== '55006' || attempt >= 50) throw error;
        await sleep(100);
      }
    }
  });
  const url = withDatabase(inject('adminDatabaseUrl'), name);
  return {
    url,
    name,
    drop: () => admin((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

/** A fresh, empty database of its own (not migrated). */
export async function createEmptyDatabase(): Promise<TestDatabase> {
  return create();
}

/**
 * A fresh database with every cutover migration applied: a copy of the run's template, which
 * global setup migrated once (a copy takes a fraction of a migration run).
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  return create(inject('templateDatabase'));
}
