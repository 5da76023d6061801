-- When the strategy made each signal it decides (`Signal.created_at`), so that a strategy's
-- latest signal is the one it made last, whichever risk manager replica decided it first: two
-- replicas taking a backlog at once can decide a strategy's later signal before its earlier
-- one. Decisions stored before this migration read as made when they were decided.
ALTER TABLE risk_decisions ADD COLUMN signal_created_at TIMESTAMPTZ;
