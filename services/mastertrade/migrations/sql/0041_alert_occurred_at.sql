-- When an alert's event happened (AlertEvent.occurred_at), kept with the alert: a delivery
-- resumed after a crash or a hand-over sends the time the event happened, not the time it was
-- resumed, and every attempt of a signed webhook carries the same body. NULL for alerts stored
-- before this migration (their created_at stands in).
ALTER TABLE alerts ADD COLUMN occurred_at TIMESTAMPTZ;
