// The adoption guard behind a transaction pooler: cutover's writes carry no startup option any
// more (PgBouncer refuses them, or drops them when told to ignore them), so the guard knows
// cutover's connections by their application_name, which the pooler keeps per client and sets
// on whichever server connection serves it. A team runner through the same pooler is refused.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adoptionSql } from '../../src/adopt/adopt.js';
import { createPool } from '../../src/db/pool.js';
import { GENERIC_TABLE } from '../../src/table/table.js';
import { createTestDatabase, type TestDatabase } from '../helpers/database.js';
import { addLegacyJobs, testPool } from '../helpers/jobs.js';
import { startPgBouncer, type PgBouncer } from '../helpers/pgbouncer.js';

let database: TestDatabase;
let bouncer: PgBouncer;
beforeAll(async () => {
  database = await createTestDatabase();
  const direct = testPool(database.url);
  try {
    await direct.query(await adoptionSql(GENERIC_TABLE));
  } finally {
    await direct.end();
  }
  bouncer = await startPgBouncer({ poolSize: 2 });
});
afterAll(async () => {
  await bouncer?.stop();
  await database?.drop();
});

describe('the adoption guard through PgBouncer in transaction mode', () => {
  it("lets cutover's pooled writes change a pg-boss row and refuses a team runner's, on shared server connections", async () => {
    const pooled = bouncer.urlFor(database.url);
    const cutover = createPool(pooled, { max: 2, applicationName: 'cutover-pgboss-worker' });
    // The team's runner: its own name, through the same pooler and so the same server connections.
    const team = new pg.Pool({ connectionString: pooled, max: 2, application_name: 'team-runner' });
    try {
      const ids = await addLegacyJobs(cutover, 'test.noop', Array.from({ length: 10 }, (_, i) => ({ i })));
      await cutover.query(`UPDATE "Job" SET engine = 'PGBOSS' WHERE id = ANY($1::uuid[])`, [ids]);
      const outcomes = await Promise.all(
        ids.flatMap((id) => [
          cutover.query(`UPDATE "Job" SET status = 'RUNNING', "startedAt" = now() WHERE id = $1`, [id]).then(() => 'cutover ok', (e: Error) => `cutover refused: ${e.message}`),
          team.query(`UPDATE "Job" SET status = 'FAILED' WHERE id = $1`, [id]).then(() => 'team ok', (e: Error) => (/cutover guard/.test(e.message) ? 'team refused' : e.message)),
        ]),
      );
      expect(outcomes.filter((o) => o === 'cutover ok')).toHaveLength(ids.length);
      expect(outcomes.filter((o) => o === 'team refused')).toHaveLength(ids.length);
      const { rows } = await cutover.query<{ status: string; n: number }>(`SELECT status::text, count(*)::int AS n FROM "Job" GROUP BY 1`);
      expect(rows).toEqual([{ status: 'RUNNING', n: ids.length }]);
    } finally {
      await cutover.end();
      await team.end();
    }
  });
});
