-- What a channel's rate limit held back is told in the channel's digest (alerts_held_back)
-- from the history itself, so that any replica, after any restart, tells each such delivery
-- once: `told_at` marks the rate-limited deliveries a digest has counted, and
-- `alert_digests` keeps when each channel's last digest was raised (at most one a minute).
-- Deliveries held back before this migration were told, if ever, by the process that held
-- them back: they are taken as told.
ALTER TABLE alert_deliveries ADD COLUMN told_at TIMESTAMPTZ;
UPDATE alert_deliveries SET told_at = updated_at WHERE status = 'rate_limited';
CREATE INDEX alert_deliveries_untold ON alert_deliveries (channel)
    WHERE status = 'rate_limited' AND told_at IS NULL;
CREATE TABLE alert_digests (
    channel TEXT        PRIMARY KEY,
    told_at TIMESTAMPTZ NOT NULL
);
