-- What the data access API, the arbitrage service and the gateway need beyond the base schema:
-- the arbitrage opportunities table, and indexes whose column order matches the keyset order
-- of each read (time, then a unique tie-breaker), so a page is an index range scan, never a sort.

CREATE TABLE arbitrage_opportunities (
    id              BIGSERIAL   PRIMARY KEY,
    kind            TEXT        NOT NULL CHECK (kind IN ('triangular', 'cross_venue')),
    venue           TEXT        NOT NULL,
    route           TEXT        NOT NULL,
    start_asset     TEXT        NOT NULL,
    start_amount    NUMERIC     NOT NULL CHECK (start_amount > 0),
    expected_profit NUMERIC     NOT NULL,
    profit_bps      NUMERIC     NOT NULL,
    legs            JSONB       NOT NULL DEFAULT '[]'::jsonb,
    detected_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX arbitrage_opportunities_time ON arbitrage_opportunities (detected_at, id);

CREATE INDEX IF NOT EXISTS trades_symbol_time_id ON trades (symbol, traded_at, id);
CREATE INDEX IF NOT EXISTS orders_created_id ON orders (created_at, client_order_id);
CREATE INDEX IF NOT EXISTS fills_time_id ON fills (filled_at, id);
CREATE INDEX IF NOT EXISTS strategies_created_id ON strategies (created_at, id);
CREATE INDEX IF NOT EXISTS backtests_created_id ON backtests (created_at, id);
CREATE INDEX IF NOT EXISTS alerts_created_id ON alerts (created_at, id);
CREATE INDEX IF NOT EXISTS positions_updated ON positions (updated_at, environment, symbol);
