-- pokazy ClickHouse schema, migration 0001: accepted readings and rejections.
--
-- Delivery is at-least-once: after a crash the worker re-sends the rows of every submission
-- whose offset was not committed yet. Each *_log table is therefore a ReplacingMergeTree whose
-- ORDER BY is the row's idempotency key, and analysts query the view of the same name without
-- the suffix, which reads with FINAL: a re-sent row replaces its twin in every SELECT, whether or
-- not a background merge has happened yet. A row's partition must be a function of its key
-- (replacing works within a partition only), so partitions never use ingestion time.
-- `{database}` is substituted by the migration runner.

-- One row per accepted register reading. Key: (event_id, zone), unique because a submission
-- naming the same zone twice is rejected as MALFORMED. Partitioned by billing period, which is
-- fixed for a given reading.
CREATE TABLE IF NOT EXISTS {database}.readings_log
(
    event_id     String,
    account_id   String,
    meter_id     String,
    zone         LowCardinality(String),
    register     Nullable(String),
    value        UInt64,
    kind         LowCardinality(String) COMMENT 'in_window | off_window',
    period       LowCardinality(String) COMMENT 'billing period YYYY-MM',
    local_date   Date COMMENT 'Kyiv local date of submitted_at',
    submitted_at DateTime64(3, 'UTC'),
    channel      LowCardinality(String),
    sender_hash  String COMMENT 'HMAC-SHA256(channel:sender_id); raw chat ids are never stored',
    kwh          Nullable(Int64) COMMENT 'provisional consumption since the baseline',
    flags        Array(LowCardinality(String)),
    ingested_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY period
ORDER BY (account_id, event_id, zone);

CREATE VIEW IF NOT EXISTS {database}.readings AS
SELECT * FROM {database}.readings_log FINAL;

-- One row per rejected register reading, or one per MALFORMED submission. Key: row_key, which is
-- "<event_id>:<position>" (position -1 for a whole submission) or, when the message could not
-- even be decoded, "sha256:<hex of the payload>". Not partitioned: rejections are few, and any
-- partition derived from the rejection time would split a row from its replayed twin.
-- `payload` keeps the message bytes exactly as received, so `rejections replay` can re-publish.
CREATE TABLE IF NOT EXISTS {database}.rejections_log
(
    row_key      String,
    event_id     String,
    account_id   String,
    zone         Nullable(String),
    register     Nullable(String),
    value        Nullable(Int64),
    reason       LowCardinality(String),
    detail       String,
    channel      LowCardinality(String),
    sender_hash  String,
    submitted_at Nullable(DateTime64(3, 'UTC')),
    period       LowCardinality(String) COMMENT 'YYYY-MM of the Kyiv date submitted, empty if unknown',
    payload      String,
    rejected_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY row_key;

CREATE VIEW IF NOT EXISTS {database}.rejections AS
SELECT * EXCEPT (row_key) FROM {database}.rejections_log FINAL;
