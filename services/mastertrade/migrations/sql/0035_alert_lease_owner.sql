-- A delivery's lease names the replica holding it. Without a name, a replica whose lease ran out
-- (paused, or cut off from the database for longer than the lease) went on retrying and renewed
-- the lease of the replica that took the delivery over, and its outcome overwrote that one's:
-- the alert sent twice and recorded by whichever finished last. Now only the holder renews the
-- lease and records the outcome, and a replica that finds its delivery held by another stops it.
-- Rows from before this migration have no holder: they are resumed (and named) when their lease
-- runs out, as before.
ALTER TABLE alert_deliveries ADD COLUMN lease_owner TEXT;
