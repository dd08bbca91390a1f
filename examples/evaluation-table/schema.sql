-- The legacy table this example adopts, as a team's Prisma schema created it: text (cuid) ids,
-- domain columns instead of a type and a payload, results written back into the row. Nothing
-- here is cutover's; `cutover init` adds what cutover needs.

CREATE TYPE "JobStatus" AS ENUM ('PENDING', 'RUNNING', 'COMPLETED', 'FAILED');

CREATE TABLE "Job" (
    "id" TEXT NOT NULL,
    "status" "JobStatus" NOT NULL DEFAULT 'PENDING',
    "evaluationId" TEXT NOT NULL,
    "agentEvalBatchId" TEXT,
    "logs" TEXT,
    "llmThinking" TEXT,
    "costInCents" INTEGER,
    "durationInSeconds" DOUBLE PRECISION,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "originalJobId" TEXT,
    "error" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMP(3) NOT NULL,
    "startedAt" TIMESTAMP(3),
    "completedAt" TIMESTAMP(3),

    CONSTRAINT "Job_pkey" PRIMARY KEY ("id")
);
