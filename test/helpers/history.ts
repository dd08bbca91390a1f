import type { Pool } from '../../src/db/pool.js';

/**
 * The test's own instrumentation, not a mock: an AFTER trigger on "Job" records every status a
 * row takes (its insert, then each change) in a table the test owns, so a test asserts on the
 * whole history instead of sampling the row and maybe missing a brief state.
 */
export async function recordStatusHistory(pool: Pool): Promise<void> {
  await pool.query(`
    CREATE TABLE test_status_history (
      seq bigserial PRIMARY KEY, job_id text NOT NULL, status text NOT NULL, attempts int,
      at timestamptz NOT NULL DEFAULT clock_timestamp(), tx_at timestamptz NOT NULL DEFAULT now());
    CREATE FUNCTION test_record_status() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'INSERT' OR NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO test_status_history (job_id, status, attempts) VALUES (NEW.id::text, NEW.status::text, NEW.attempts);
      END IF;
      RETURN NULL;
    END $$;
    CREATE TRIGGER test_status_history AFTER INSERT OR UPDATE ON "Job" FOR EACH ROW EXECUTE FUNCTION test_record_status();`);
}

export interface StatusChange {
  status: string;
  attempts: number;
  /** When the change was written (clock time). */
  at: Date;
  /** The start of the transaction that wrote it: the now() its other writes (pg-boss's) saw. */
  txAt: Date;
}

/** Every status the row `id` took, in order. */
export async function statusHistory(pool: Pool, id: string): Promise<StatusChange[]> {
  const { rows } = await pool.query<StatusChange>(`SELECT status, attempts, at, tx_at AS "txAt" FROM test_status_history WHERE job_id = $1 ORDER BY seq`, [id]);
  return rows;
}
