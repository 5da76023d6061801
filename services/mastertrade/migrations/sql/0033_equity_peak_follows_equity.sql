-- The drawdown's peak follows every equity the executor stores (each fill and each revaluation),
-- not only the equity a risk batch sees when it decides a signal: a rise and fall between two
-- signals would otherwise never reach the peak, and the drawdown the breaker trips on would be
-- understated.
--
-- The peak only rises here (the admin reset is what lowers it). A plain UPDATE with the new high
-- in its condition touches, and locks, the state's row only when the equity is a new high, so an
-- executor's write does not wait for the risk manager's on every fill; and it leaves the state's
-- version alone, so a risk batch is not decided again because of it (the batch writes
-- GREATEST(peak, its own), and nothing it decided depends on the peak being lower).
CREATE FUNCTION risk_follow_equity_peak() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.equity > 0 THEN
        UPDATE risk_state SET equity_peak = NEW.equity
        WHERE environment = NEW.environment
          AND (equity_peak IS NULL OR equity_peak < NEW.equity);
        IF NOT FOUND AND NOT EXISTS (
            SELECT FROM risk_state WHERE environment = NEW.environment
        ) THEN
            INSERT INTO risk_state (environment, equity_peak) VALUES (NEW.environment, NEW.equity)
            ON CONFLICT (environment) DO NOTHING;
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER account_equity_raises_peak
AFTER INSERT OR UPDATE OF equity ON account_equity
FOR EACH ROW EXECUTE FUNCTION risk_follow_equity_peak();

UPDATE risk_state s SET equity_peak = e.equity
FROM account_equity e
WHERE e.environment = s.environment AND e.equity > 0
  AND (s.equity_peak IS NULL OR s.equity_peak < e.equity);
