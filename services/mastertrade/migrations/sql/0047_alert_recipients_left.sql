-- A delivery that reached some of its channel's recipients (an e-mail accepted for some
-- addresses, greylisted for others) keeps, while it waits to retry, whom it has still to reach:
-- the replica that takes it over after a crash, or after this one stopped, sends to those
-- alone, never twice to those who got it. NULL: the channel's whole list.
ALTER TABLE alert_deliveries ADD COLUMN recipients_left TEXT[];
