-- pokazy ClickHouse schema, migration 0005: what `days` counts on the lines of late master data.
--
-- A meter whose installation reached the pipeline after the period it began in was closed is
-- billed from its initial reading in the next period closed: its first line covers the days
-- since its installation, more than that period has, so kWh / days stays a true daily rate.
-- A removal that reaches the pipeline after the period of the meter's last day was closed is
-- billed `final` in the next period closed, with 0 days (SPEC 2.5). Only the comment changes.
-- `{database}` is substituted by the migration runner.
ALTER TABLE {database}.billing_log
    COMMENT COLUMN days 'days the line covers: the days the meter was active in the period; on a meter first line, since its installation; 0 on a final billed after its period closed';
