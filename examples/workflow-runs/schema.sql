-- A Prisma-made workflow table whose status enum is ordinary but whose counters mean something
-- else than cutover's: "retried" counts retries (not runs), and "maxRetries" allows
-- "maxRetries" + 1 runs. A run is QUEUED until "notBefore", "finishedAt" is set when it ends
-- either way, and its steps are rows of a child table pointing at the run.

CREATE TYPE "RunState" AS ENUM ('QUEUED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED');

CREATE TABLE "WorkflowRun" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "workflow" TEXT NOT NULL,
    "input" JSONB NOT NULL,
    "state" "RunState" NOT NULL DEFAULT 'QUEUED',
    "retried" INTEGER NOT NULL DEFAULT 0,
    "maxRetries" INTEGER NOT NULL DEFAULT 2,
    "priority" INTEGER NOT NULL DEFAULT 0,
    "notBefore" TIMESTAMP(3),
    "startedAt" TIMESTAMP(3),
    "finishedAt" TIMESTAMP(3),
    "error" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    CONSTRAINT "WorkflowRun_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "WorkflowStep" (
    "id" SERIAL NOT NULL,
    "runId" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "engine" TEXT NOT NULL,
    "attempt" INTEGER NOT NULL,
    -- The run's "retried" as the step saw it (the retries made before this run), for the tests.
    "retriedSeen" INTEGER,
    "at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "WorkflowStep_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "WorkflowStep_runId_fkey" FOREIGN KEY ("runId") REFERENCES "WorkflowRun"("id") ON DELETE CASCADE ON UPDATE CASCADE
);
