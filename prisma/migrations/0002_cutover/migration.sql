-- cutover's additions to the generic legacy table: which engine owns each job, why it was
-- routed there, and what the hardened legacy runner needs (ownership, heartbeat, backoff).
-- Everything is IF NOT EXISTS so an operator can build the indexes CONCURRENTLY beforehand
-- on a busy table (RUNBOOK.md) and this migration then takes no long lock.

-- CreateEnum
DO $$ BEGIN
    CREATE TYPE "JobEngine" AS ENUM ('LEGACY', 'PGBOSS');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

-- AlterTable
ALTER TABLE "Job"
    ADD COLUMN IF NOT EXISTS "engine" "JobEngine" NOT NULL DEFAULT 'LEGACY',
    ADD COLUMN IF NOT EXISTS "pgbossJobId" UUID,
    ADD COLUMN IF NOT EXISTS "routeReason" TEXT,
    ADD COLUMN IF NOT EXISTS "bucket" INTEGER,
    ADD COLUMN IF NOT EXISTS "workerId" TEXT,
    ADD COLUMN IF NOT EXISTS "heartbeatAt" TIMESTAMPTZ(3),
    ADD COLUMN IF NOT EXISTS "runAfter" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP;

-- CreateIndex
CREATE UNIQUE INDEX IF NOT EXISTS "Job_pgbossJobId_key" ON "Job"("pgbossJobId");

-- CreateIndex: serves the legacy claim query and the mapper's backlog scan.
CREATE INDEX IF NOT EXISTS "Job_claim_idx" ON "Job"("engine", "status", "runAfter");

-- CreateIndex: retry chains.
CREATE INDEX IF NOT EXISTS "Job_originalJobId_idx" ON "Job"("originalJobId");

-- CreateIndex: per-type windows for reconcile and outcome comparison.
CREATE INDEX IF NOT EXISTS "Job_type_createdAt_idx" ON "Job"("type", "createdAt");
