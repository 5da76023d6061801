-- The closing sweep (`strategy/closing.py`) looks every few minutes at the strategies that once
-- traded and no longer do. One found holding nothing in the environment traded in, with no
-- order open, no approved signal that is not an order yet, and retired over an hour ago (a
-- signal its pod sent just before may not be decided yet), is closed there: `closed_at` and
-- `closed_in` keep it out of later sweeps of that environment (retirements add some ten
-- strategies a day, each a handful of reads a sweep) until an activation clears them.
ALTER TABLE strategies
    ADD COLUMN retired_at TIMESTAMPTZ,
    ADD COLUMN closed_at TIMESTAMPTZ,
    ADD COLUMN closed_in TEXT CHECK (closed_in IN ('paper', 'live')),
    ADD CONSTRAINT strategies_closed_where CHECK ((closed_at IS NULL) = (closed_in IS NULL));
CREATE INDEX strategies_once_active ON strategies (id)
    WHERE activated_at IS NOT NULL AND status <> 'active';
