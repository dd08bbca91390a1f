-- cutover's tables for the two ends of a rollout: workers' heartbeats (preflight, drain-report)
-- and finalized job types (finalize). Only new tables, IF NOT EXISTS: this folder is applied
-- beside the built-in migrations and beside a team's adoption migration alike, in any order.

-- CreateTable
CREATE TABLE IF NOT EXISTS "RolloutFinal" (
    "jobType" TEXT NOT NULL,
    "tracking" BOOLEAN NOT NULL DEFAULT true,
    "finalizedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finalizedBy" TEXT NOT NULL,

    CONSTRAINT "RolloutFinal_pkey" PRIMARY KEY ("jobType")
);

-- CreateTable
CREATE TABLE IF NOT EXISTS "WorkerHeartbeat" (
    "workerId" TEXT NOT NULL,
    "engine" TEXT NOT NULL,
    "host" TEXT NOT NULL,
    "pid" INTEGER NOT NULL,
    "version" TEXT NOT NULL,
    "types" TEXT[] NOT NULL,
    "startedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "seenAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "WorkerHeartbeat_pkey" PRIMARY KEY ("workerId")
);
