-- A strategy's holding is read from the orders its signals became (`orders.signal_ref` starts
-- with `st<strategy id>-`): on every sell it signals and when a run retires it; its latest
-- signal from the risk manager's decisions, after its pod read candles it had not seen. Without
-- these indexes each read went through the whole history. text_pattern_ops serves a prefix
-- LIKE whatever the database's collation.
CREATE INDEX orders_by_signal ON orders (signal_ref text_pattern_ops, symbol);
CREATE INDEX risk_decisions_by_signal ON risk_decisions (signal_id text_pattern_ops);
