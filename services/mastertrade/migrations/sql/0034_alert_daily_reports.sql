-- The alert system's daily report: one row per (day, environment), claimed in the transaction
-- that stores the report's alert, so replicas and restarts send each report exactly once (the
-- alerts' dedup window, minutes, could not promise that for a day). `alert_id` is the alert
-- that carried it, for the history.
CREATE TABLE alert_daily_reports (
    report_date DATE        NOT NULL,
    environment TEXT        NOT NULL CHECK (environment IN ('paper', 'live')),
    window_end  TIMESTAMPTZ NOT NULL,
    alert_id    BIGINT      REFERENCES alerts (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (report_date, environment)
);

-- The history API filters by kind (`GET /api/v1/alerts?kind=daily_report`): a rare kind is then
-- read by index, not found by scanning every fill alert ever sent.
CREATE INDEX alerts_kind ON alerts (kind, id DESC);

-- A pending delivery is leased to the replica delivering it, which renews the lease while it
-- tries: another replica (or a restart) resumes only deliveries whose lease ran out, so a
-- replica starting up no longer sends again what a live one is sending. Rows from before this
-- migration have no lease and are resumed as before.
ALTER TABLE alert_deliveries ADD COLUMN lease_until TIMESTAMPTZ;
CREATE INDEX alert_deliveries_pending ON alert_deliveries (lease_until) WHERE status = 'pending';
