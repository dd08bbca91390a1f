-- The delayed_job table (Ruby on Rails), as its generator creates it: no status column. A row
-- waits until run_at, is held while locked_at is set (locked_at older than the maximum run time
-- means its worker died), has failed for good once failed_at is set, and is DELETED when its
-- job succeeds. Lower priority numbers run first; attempts counts failed runs; the job itself is
-- serialised in the handler text (YAML in a Ruby app, JSON here). Rails sets created_at and
-- updated_at itself: they have no default. `cutover init` adds a status of cutover's own
-- ("cutoverStatus"), a completedAt for the rows it archives, and its bookkeeping columns.

CREATE TABLE delayed_jobs (
    id BIGSERIAL PRIMARY KEY,
    priority INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    handler TEXT NOT NULL,
    last_error TEXT,
    run_at TIMESTAMP(6),
    locked_at TIMESTAMP(6),
    failed_at TIMESTAMP(6),
    locked_by CHARACTER VARYING,
    queue CHARACTER VARYING,
    created_at TIMESTAMP(6) NOT NULL,
    updated_at TIMESTAMP(6) NOT NULL
);
CREATE INDEX delayed_jobs_priority ON delayed_jobs (priority, run_at);

-- What each run did, for the tests: one row per execution, on whichever engine.
CREATE TABLE delayed_job_runs (
    id BIGSERIAL PRIMARY KEY,
    job_id BIGINT NOT NULL,
    engine TEXT NOT NULL,
    priority INTEGER NOT NULL,
    at TIMESTAMP(6) NOT NULL DEFAULT now()
);
