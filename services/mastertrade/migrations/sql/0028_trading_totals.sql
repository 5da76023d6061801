-- Whole-history totals behind the risk manager's gauges (orders by status, fills and their
-- notional by side, decisions by outcome), kept with the writes: the gauges used to count the
-- whole tables every 5 seconds, a cost that grew with the trading history for ever.
--
-- Statement-level triggers append one delta row per (environment, metric, label) and statement;
-- appending takes no lock another writer could wait on, so replicas and the existing lock order
-- (orders, balance, positions) are untouched. The gauges' refresh folds the deltas into
-- `trading_totals` (delete and add in one statement) and reads totals plus unfolded deltas.
-- pg_dump/pg_restore carry both tables with the rows they describe.

CREATE TABLE trading_totals (
    environment TEXT    NOT NULL,
    metric      TEXT    NOT NULL CHECK (metric IN ('orders', 'fills', 'decisions')),
    label       TEXT    NOT NULL,
    count       BIGINT  NOT NULL,
    notional    NUMERIC NOT NULL DEFAULT 0,
    PRIMARY KEY (environment, metric, label)
);

CREATE TABLE trading_total_deltas (
    id          BIGSERIAL PRIMARY KEY,
    environment TEXT      NOT NULL,
    metric      TEXT      NOT NULL CHECK (metric IN ('orders', 'fills', 'decisions')),
    label       TEXT      NOT NULL,
    count       BIGINT    NOT NULL,
    notional    NUMERIC   NOT NULL DEFAULT 0
);

CREATE FUNCTION trading_totals_orders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO trading_total_deltas (environment, metric, label, count)
        SELECT environment, 'orders', status, count(*) FROM added GROUP BY 1, 3;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO trading_total_deltas (environment, metric, label, count)
        SELECT environment, 'orders', status, -count(*) FROM removed GROUP BY 1, 3;
    ELSE
        INSERT INTO trading_total_deltas (environment, metric, label, count)
        SELECT environment, 'orders', status, sum(n) FROM (
            SELECT environment, status, -1 AS n FROM removed
            UNION ALL SELECT environment, status, 1 FROM added
        ) changed GROUP BY 1, 3 HAVING sum(n) <> 0;
    END IF;
    RETURN NULL;
END $$;

-- A fill's side and environment are its order's (inserted before it, never changed).
CREATE FUNCTION trading_totals_fills() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO trading_total_deltas (environment, metric, label, count, notional)
        SELECT o.environment, 'fills', o.side, count(*), sum(f.price * f.quantity)
        FROM added f JOIN orders o USING (client_order_id) GROUP BY 1, 3;
    ELSE
        INSERT INTO trading_total_deltas (environment, metric, label, count, notional)
        SELECT o.environment, 'fills', o.side, -count(*), -sum(f.price * f.quantity)
        FROM removed f JOIN orders o USING (client_order_id) GROUP BY 1, 3;
    END IF;
    RETURN NULL;
END $$;

-- A decision's outcome never changes once stored (only `pending` does).
CREATE FUNCTION trading_totals_decisions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO trading_total_deltas (environment, metric, label, count)
        SELECT environment, 'decisions', outcome, count(*) FROM added GROUP BY 1, 3;
    ELSE
        INSERT INTO trading_total_deltas (environment, metric, label, count)
        SELECT environment, 'decisions', outcome, -count(*) FROM removed GROUP BY 1, 3;
    END IF;
    RETURN NULL;
END $$;

-- Deleting an order deletes its fills by cascade, after the order is gone: the fills' own
-- trigger then finds no order to take the side from, so the order's row trigger (deletions only,
-- which the platform never does) takes its fills off first.
CREATE FUNCTION trading_totals_order_fills() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO trading_total_deltas (environment, metric, label, count, notional)
    SELECT OLD.environment, 'fills', OLD.side, -count(*), -sum(price * quantity)
    FROM fills WHERE client_order_id = OLD.client_order_id HAVING count(*) > 0;
    RETURN OLD;
END $$;

CREATE FUNCTION trading_totals_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM trading_totals WHERE metric = TG_ARGV[0];
    DELETE FROM trading_total_deltas WHERE metric = TG_ARGV[0];
    RETURN NULL;
END $$;

CREATE TRIGGER orders_totals_inserted AFTER INSERT ON orders
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION trading_totals_orders();
CREATE TRIGGER orders_totals_updated AFTER UPDATE ON orders
    REFERENCING OLD TABLE AS removed NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION trading_totals_orders();
CREATE TRIGGER orders_totals_deleted AFTER DELETE ON orders
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION trading_totals_orders();
CREATE TRIGGER orders_fills_totals_deleted BEFORE DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION trading_totals_order_fills();
CREATE TRIGGER orders_totals_truncated AFTER TRUNCATE ON orders
    FOR EACH STATEMENT EXECUTE FUNCTION trading_totals_truncated('orders');

CREATE TRIGGER fills_totals_inserted AFTER INSERT ON fills
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION trading_totals_fills();
CREATE TRIGGER fills_totals_deleted AFTER DELETE ON fills
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION trading_totals_fills();
CREATE TRIGGER fills_totals_truncated AFTER TRUNCATE ON fills
    FOR EACH STATEMENT EXECUTE FUNCTION trading_totals_truncated('fills');

CREATE TRIGGER decisions_totals_inserted AFTER INSERT ON risk_decisions
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION trading_totals_decisions();
CREATE TRIGGER decisions_totals_deleted AFTER DELETE ON risk_decisions
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION trading_totals_decisions();
CREATE TRIGGER decisions_totals_truncated AFTER TRUNCATE ON risk_decisions
    FOR EACH STATEMENT EXECUTE FUNCTION trading_totals_truncated('decisions');

-- What is stored already, counted once.
INSERT INTO trading_totals (environment, metric, label, count, notional)
SELECT environment, 'orders', status, count(*), 0 FROM orders GROUP BY 1, 3
UNION ALL
SELECT o.environment, 'fills', o.side, count(*), sum(f.price * f.quantity)
FROM fills f JOIN orders o USING (client_order_id) GROUP BY 1, 3
UNION ALL
SELECT environment, 'decisions', outcome, count(*), 0 FROM risk_decisions GROUP BY 1, 3;
