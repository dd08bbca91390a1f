-- Notifications (RUNBOOK.md §3): the audit log is the outbox. Every event worth telling about is
-- already a row of "RolloutEvent" (or "ReconcileRun"), written in the transaction of the change
-- it records; the delivery loop copies those rows into "NotificationDelivery", one row per
-- notification, and delivers each from there with retries. Only new tables, IF NOT EXISTS: this
-- folder is applied beside the built-in migrations and beside a team's adoption migration alike,
-- in any order, so nothing here may name another table.

-- CreateTable
-- How far the loop has read each source ('RolloutEvent', 'ReconcileRun', 'dlq:<queue>').
-- "position": every row with an id up to it is copied (for a dead letter queue: the count last
-- notified). "seenId"/"seenXmax": a checkpoint not yet settled: rows up to "seenId" were read,
-- and once every transaction below "seenXmax" has ended, none below it can still appear.
CREATE TABLE IF NOT EXISTS "NotificationCursor" (
    "source" TEXT NOT NULL,
    "position" BIGINT NOT NULL,
    "seenId" BIGINT,
    "seenXmax" BIGINT,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "NotificationCursor_pkey" PRIMARY KEY ("source")
);

-- CreateTable
-- One notification and its delivery: "key" names its source row ('event:42'), so copying the
-- same row twice adds nothing. A loop claims a due row by moving its "nextAttemptAt" past the
-- time one request may take (a lease: should the loop die, the row is due again after it);
-- "attempts" and "lastError" record the retries; "deliveredAt" or "gaveUpAt" ends it.
CREATE TABLE IF NOT EXISTS "NotificationDelivery" (
    "id" BIGSERIAL NOT NULL,
    "key" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "jobType" TEXT,
    "occurredAt" TIMESTAMPTZ(3) NOT NULL,
    "notification" JSONB NOT NULL,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "nextAttemptAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastError" TEXT,
    "deliveredAt" TIMESTAMPTZ(3),
    "gaveUpAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "NotificationDelivery_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "NotificationDelivery_key_key" UNIQUE ("key")
);

-- CreateIndex
-- The claim query's: only what is still to deliver, so the index stays small however long the history.
CREATE INDEX IF NOT EXISTS "NotificationDelivery_due_idx" ON "NotificationDelivery"("nextAttemptAt", "id") WHERE "deliveredAt" IS NULL AND "gaveUpAt" IS NULL;
