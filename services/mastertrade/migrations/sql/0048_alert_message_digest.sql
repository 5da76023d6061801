-- The identity of the queued message an alert came from (the SHA-256 of its canonical JSON,
-- for a message that carries the time its event happened), so that the broker redelivering it
-- however late (a replica that died before acknowledging it, down for longer than the dedup
-- window) is known as the same message, not a new alert, whatever its dedup key. NULL for
-- alerts from elsewhere (Alertmanager, the API, the daily report, digests) and from before.
ALTER TABLE alerts ADD COLUMN message_digest TEXT;
CREATE INDEX alerts_message_digest ON alerts (message_digest, created_at DESC)
    WHERE message_digest IS NOT NULL;
