-- The legacy backlog in the order both the legacy claim and the mapper take it (highest
-- priority, then oldest). Partial: only rows waiting on legacy, so it stays small however big
-- the table grows, and each claim or migrate batch reads the head of it instead of sorting
-- every waiting row. On a busy live table build it CONCURRENTLY first (RUNBOOK.md).

-- CreateIndex
CREATE INDEX IF NOT EXISTS "Job_legacy_backlog_idx" ON "Job"("priority" DESC, "createdAt") WHERE "status" = 'PENDING' AND "engine" = 'LEGACY';
