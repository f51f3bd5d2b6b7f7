-- pokazy ClickHouse schema, migration 0004: rejections that a replay overturned are retracted.
--
-- `rejections replay` re-publishes a wholly rejected submission (say UNKNOWN_ACCOUNT before
-- its meter arrived); when it is accepted on the second pass, its readings land in `readings`,
-- and the rejection rows of the first pass must leave `rejections`, or the same reading is
-- counted accepted and rejected (in `submissions_daily`, `rejection_reasons`) and a second
-- replay would send it again. The worker retracts them by writing a row with the same
-- row_key and `retracted = true`: the ReplacingMergeTree keeps the last inserted row of a key,
-- and the view reads with FINAL, so the retraction replaces the rejection in every SELECT.
-- A retraction is re-sent with the rest of the submission's rows after a crash; sending it
-- twice changes nothing. Rows written before this migration read as not retracted.
-- `{database}` is substituted by the migration runner.
ALTER TABLE {database}.rejections_log
    ADD COLUMN IF NOT EXISTS retracted Bool DEFAULT false
    COMMENT 'true: a replay of the submission accepted this reading; hidden from the view';

CREATE OR REPLACE VIEW {database}.rejections AS
SELECT * EXCEPT (row_key, retracted) FROM {database}.rejections_log FINAL
WHERE NOT retracted;
