-- A home-grown job table with no status column: a row's state is derived from its timestamps
-- and counters. It waits while "succeededAt" IS NULL AND "attempts" < "maxAttempts" (and runs
-- once "scheduledAt" has come), has succeeded once "succeededAt" is set, and has failed for good
-- once its attempts are used up. "attempts" counts failed runs; each failure records
-- "lastError" and "lastFailedAttemptAt". The payload is JSON kept in a text column. The team's
-- runner selects due rows, runs them, then writes the outcome: it claims nothing and has no
-- running state. `cutover init` adds a status of cutover's own ("cutoverStatus") and the
-- bookkeeping it needs, and never changes what these columns mean.

CREATE TABLE "BackgroundJob" (
    "id" SERIAL NOT NULL,
    "name" TEXT NOT NULL,
    "payload" TEXT NOT NULL,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "maxAttempts" INTEGER NOT NULL DEFAULT 3,
    "scheduledAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "succeededAt" TIMESTAMP(3),
    "lastError" TEXT,
    "lastFailedAttemptAt" TIMESTAMP(3),
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "BackgroundJob_pkey" PRIMARY KEY ("id")
);

-- What each run did, for the tests: one row per execution, on whichever engine, and whether the
-- team's own "waiting" query read the job as waiting while it ran (it has no running state).
CREATE TABLE "BackgroundJobRun" (
    "id" SERIAL NOT NULL,
    "jobId" INTEGER NOT NULL,
    "engine" TEXT NOT NULL,
    "teamWaiting" BOOLEAN,
    "at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "BackgroundJobRun_pkey" PRIMARY KEY ("id")
);
