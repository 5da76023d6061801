-- A strategy's holding is read from the orders its signals became (`orders.signal_ref` starts
-- with `st<strategy id>-`): on every sell it signals and when a run retires it. Without an
-- index each read went through the whole order history. text_pattern_ops serves a prefix LIKE
-- whatever the database's collation.
CREATE INDEX orders_by_signal ON orders (signal_ref text_pattern_ops, symbol);
