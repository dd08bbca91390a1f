-- cutover's own tables. Both the generic demo table and an adopted legacy table
-- (cutover init) use them, so they live apart from the migrations that touch "Job".

-- CreateTable
CREATE TABLE IF NOT EXISTS "RolloutFlag" (
    "jobType" TEXT NOT NULL,
    "basisPoints" INTEGER NOT NULL DEFAULT 0,
    "killSwitch" BOOLEAN NOT NULL DEFAULT false,
    "salt" TEXT NOT NULL DEFAULT '',
    "fallbackToLegacy" BOOLEAN NOT NULL DEFAULT true,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedBy" TEXT,

    CONSTRAINT "RolloutFlag_pkey" PRIMARY KEY ("jobType"),
    CONSTRAINT "RolloutFlag_basisPoints_check" CHECK ("basisPoints" BETWEEN 0 AND 10000)
);

-- CreateTable
CREATE TABLE IF NOT EXISTS "RolloutEvent" (
    "id" BIGSERIAL NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "actor" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "jobType" TEXT,
    "before" JSONB,
    "after" JSONB,
    "reason" TEXT,

    CONSTRAINT "RolloutEvent_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX IF NOT EXISTS "RolloutEvent_jobType_at_idx" ON "RolloutEvent"("jobType", "at");

-- CreateTable
CREATE TABLE IF NOT EXISTS "RolloutPlanRun" (
    "id" UUID NOT NULL,
    "planName" TEXT NOT NULL,
    "jobType" TEXT NOT NULL,
    "plan" JSONB NOT NULL,
    "currentStep" INTEGER NOT NULL DEFAULT 0,
    "state" TEXT NOT NULL,
    "stepStartedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "startedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" TIMESTAMPTZ(3),
    "reason" TEXT,

    CONSTRAINT "RolloutPlanRun_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE IF NOT EXISTS "ReconcileRun" (
    "id" BIGSERIAL NOT NULL,
    "startedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "findings" INTEGER NOT NULL,
    "summary" JSONB NOT NULL,

    CONSTRAINT "ReconcileRun_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE IF NOT EXISTS "MigrationQuarantine" (
    "jobId" TEXT NOT NULL,
    "jobType" TEXT,
    "reason" TEXT NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "MigrationQuarantine_pkey" PRIMARY KEY ("jobId")
);

-- CreateTable
CREATE TABLE IF NOT EXISTS "DemoDelivery" (
    "id" BIGSERIAL NOT NULL,
    "jobId" TEXT NOT NULL,
    "engine" TEXT NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "DemoDelivery_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX IF NOT EXISTS "DemoDelivery_jobId_idx" ON "DemoDelivery"("jobId");
