-- A job table as many teams wrote their own: snake_case, bigint ids, text statuses (no enum),
-- a queue column and a JSON payload, a scheduled time (run_at), and retries on the same row
-- (attempts counted up, run_at pushed back, status back to 'queued'). A child table points at
-- the job row. Nothing here is cutover's; `cutover init` adds what cutover needs.

CREATE TABLE jobs (
    id bigserial PRIMARY KEY,
    queue text NOT NULL,
    payload jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'working', 'done', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 3,
    run_at timestamptz NOT NULL DEFAULT now(),
    locked_at timestamptz,
    finished_at timestamptz,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX jobs_queue_status_run_at ON jobs (status, run_at);

-- Work a job did, pointing at its row: handlers get the row's own id on both engines.
CREATE TABLE job_runs (
    id bigserial PRIMARY KEY,
    job_id bigint NOT NULL REFERENCES jobs (id),
    engine text NOT NULL,
    attempt integer NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
