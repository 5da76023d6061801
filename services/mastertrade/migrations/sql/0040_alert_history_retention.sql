-- alert_system keeps its history for ALERT_HISTORY_DAYS (90 by default): it removes older alerts
-- with their deliveries, a thousand a statement, but not one a repeat still names as the alert
-- it repeats (`suppressed_by`, which stays NO ACTION: a firing alert's repeats are suppressed
-- only while the alert they name shows it was delivered). Removing an alert looks for the rows
-- that name it: the repeats (the sweep asks, and the foreign key checks for each alert removed)
-- and the daily report's claim, which stays, its `alert_id` set to NULL by its foreign key, so
-- the day is never reported again. Without these indexes each alert removed read every row of
-- the table. Dedup by a key that names one event looks back with no time limit; alerts_dedup
-- (dedup_key, created_at DESC) serves it.
CREATE INDEX alerts_suppressed_by ON alerts (suppressed_by) WHERE suppressed_by IS NOT NULL;
CREATE INDEX alert_daily_reports_alert ON alert_daily_reports (alert_id) WHERE alert_id IS NOT NULL;
