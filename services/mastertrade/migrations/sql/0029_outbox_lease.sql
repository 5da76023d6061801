-- The trading services send a batch's events themselves right after its commit and mark them
-- sent in their next statement, instead of holding a transaction open over the broker's confirms.
-- Until `leased_until` such a row is its writer's to send: the outbox loops, which send what a
-- crash or a broker outage left behind, leave it alone until then. NULL: no lease (a row any loop
-- may send at once).
ALTER TABLE outbox ADD COLUMN leased_until TIMESTAMPTZ;
