-- pokazy ClickHouse schema, migration 0003: the analyst views of SPEC §3.4 that aggregate.
--
-- Each view reads the deduplicated views of 0001 and 0002 (`readings`, `rejections`,
-- `billing`, which read their ReplacingMergeTree tables with FINAL), never the *_log tables:
-- a row re-sent after a crash or a replay is already collapsed with its twin before it is
-- counted, so a plain SELECT shows the same figures as an undisturbed run. They are plain
-- (not materialized) views: nothing is stored twice, and nothing to rebuild after a replay.
-- `{database}` is substituted by the migration runner.

-- One row per (period, zone, basis) of closed billing periods.
--   accounts: distinct accounts with a billing line of that zone and basis in the period. An
--             account whose meter was exchanged during the period appears under `final` (the
--             old meter) and under the new meter's basis, so accounts are not additive across
--             bases; across zones they count meter registers (a two-zone account is in `day`
--             and in `night`).
--   kwh:      the billed consumption, sum of the lines' kWh; negative lines (catch-ups after
--             over-estimates) are included, so it is what the supplier bills for that cell.
CREATE VIEW IF NOT EXISTS {database}.billing_monthly AS
SELECT
    period,
    zone,
    basis,
    uniqExact(account_id) AS accounts,
    sum(kwh) AS kwh
FROM {database}.billing
GROUP BY period, zone, basis;

-- One row per (local_date, channel): what the bots received on one Kyiv local day.
--   local_date:  the Kyiv local date of submitted_at (`readings.local_date`; for rejections
--                computed the same way, toDate(submitted_at, 'Europe/Kyiv')).
--   submissions: distinct event_ids submitted that day through that channel, accepted or
--                rejected, from `readings` and `rejections` together. A bot's retry (same
--                event_id) counts once; a submission with one reading accepted and one
--                rejected counts once.
--   accepted:    register readings accepted (rows of `readings`).
--   rejected:    register readings rejected (rows of `rejections`; a MALFORMED submission
--                that still carried its event_id, channel and time counts as one).
-- Messages too broken to have a submission time or a channel (undecodable bytes, a key that
-- is not the account) are not in this view: they are in `rejection_reasons` under period ''.
CREATE VIEW IF NOT EXISTS {database}.submissions_daily AS
SELECT
    local_date,
    channel,
    uniqExact(event_id) AS submissions,
    countIf(is_accepted) AS accepted,
    countIf(NOT is_accepted) AS rejected
FROM
(
    SELECT local_date, channel, event_id, true AS is_accepted
    FROM {database}.readings
    UNION ALL
    SELECT
        toDate(assumeNotNull(submitted_at), 'Europe/Kyiv') AS local_date,
        channel,
        event_id,
        false AS is_accepted
    FROM {database}.rejections
    WHERE submitted_at IS NOT NULL
)
GROUP BY local_date, channel;

-- One row per (period, reason): how many rejections of each reason code.
--   period: the calendar month of the Kyiv local date the submission was sent, exactly
--           `rejections.period`, so the two agree under any filter. It is not the period a
--           reading was meant for: one sent on the 1st-3rd inside the previous month's window
--           counts in the month it was sent. '' for messages without a readable submission
--           time (undecodable bytes, internal errors, unsigned period closes).
--   count:  rows of `rejections`: one per rejected register reading, one per MALFORMED or
--           otherwise unjudgeable message.
CREATE VIEW IF NOT EXISTS {database}.rejection_reasons AS
SELECT
    period,
    reason,
    count() AS count
FROM {database}.rejections
GROUP BY period, reason;
