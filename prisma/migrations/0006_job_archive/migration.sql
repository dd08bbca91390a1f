-- Where `cutover archive` moves finished rows of the generic table: the same columns, its own
-- primary key (a row is archived once), no other index (the archive is read rarely). An
-- adopted table gets its own archive table from `cutover init`.

-- CreateTable
CREATE TABLE IF NOT EXISTS "Job_cutover_archive" (LIKE "Job" INCLUDING DEFAULTS);

-- AddPrimaryKey
DO $$ BEGIN
    ALTER TABLE "Job_cutover_archive" ADD CONSTRAINT "Job_cutover_archive_pkey" PRIMARY KEY ("id");
EXCEPTION WHEN invalid_table_definition OR duplicate_object THEN NULL;
END $$;
