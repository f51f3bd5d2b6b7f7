-- pokazy ClickHouse schema, migration 0002: billing, one row per closed (account, meter, period,
-- zone).
--
-- A close request re-emits the same lines when it is replayed (the ledgers remember what each
-- request closed), so the key is the line's identity and the view reads with FINAL, as for
-- readings. `closed_at` is the time billing requested the close, not the insert time, so a
-- replay writes an identical row. Partitioned by period, which is part of the key.
CREATE TABLE IF NOT EXISTS {database}.billing_log
(
    account_id    String,
    meter_id      String,
    period        LowCardinality(String) COMMENT 'billing period YYYY-MM',
    zone          LowCardinality(String),
    basis         LowCardinality(String) COMMENT 'actual | calculated | estimated | final',
    start_reading UInt64 COMMENT 'E of the period before (or the initial reading), as displayed',
    end_reading   UInt64 COMMENT 'E of this period, as displayed (estimates included)',
    kwh           Int64 COMMENT 'end - start, unwrapped; negative after over-estimates',
    days          UInt16 COMMENT 'days the meter was active in the period',
    flags         Array(LowCardinality(String)),
    closed_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY period
ORDER BY (account_id, meter_id, period, zone);

CREATE VIEW IF NOT EXISTS {database}.billing AS
SELECT * FROM {database}.billing_log FINAL;
