-- The closing sweep (`strategy/closing.py`) looks every few minutes at the strategies that once
-- traded and no longer do. One found holding nothing in the environment traded in, with no
-- order open and no approved signal on its way, is closed there: `closed_at` and `closed_in`
-- keep it out of later sweeps of that environment (retirements add some ten strategies a day,
-- each a handful of reads a sweep) until it is activated again (a later `activated_at`).
ALTER TABLE strategies
    ADD COLUMN closed_at TIMESTAMPTZ,
    ADD COLUMN closed_in TEXT CHECK (closed_in IN ('paper', 'live'));
CREATE INDEX strategies_once_active ON strategies (id)
    WHERE activated_at IS NOT NULL AND status <> 'active';
