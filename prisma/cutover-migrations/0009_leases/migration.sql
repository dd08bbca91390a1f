-- Leases: the locks of long commands (migrate, rollback, a plan's controller) where no session
-- can hold an advisory lock for them, as behind a transaction pooler without DIRECT_URL. A row
-- per holder and key: shared holders of a key side by side, an exclusive one alone. The holder
-- renews "expiresAt" while it runs and deletes its rows when it ends; a holder that died (kill
-- -9) leaves rows that the next taker deletes once they expired. Only a new table, IF NOT
-- EXISTS: this folder is applied beside the built-in migrations and an adoption migration alike.

-- CreateTable
CREATE TABLE IF NOT EXISTS "CutoverLease" (
    "space" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "holder" TEXT NOT NULL,
    "mode" TEXT NOT NULL,
    "takenAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expiresAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "CutoverLease_pkey" PRIMARY KEY ("space", "name", "holder"),
    CONSTRAINT "CutoverLease_mode_check" CHECK ("mode" IN ('shared', 'exclusive'))
);
