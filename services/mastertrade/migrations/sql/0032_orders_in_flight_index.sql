-- The executor's reconcile loop asks for the orders in flight every ORDER_POLL_SECONDS. Migration
-- 0012 indexed only `new` and `submitted`, the paper venue's; the live venue also waits on
-- `partially_filled`, so its query could not use that partial index and read the whole order
-- history on every poll, slower with every order ever traded. This index covers every status
-- either venue has in flight (a finished order is filled, cancelled or rejected).
CREATE INDEX orders_in_flight ON orders (environment, status)
    WHERE status IN ('new', 'submitted', 'partially_filled');
DROP INDEX orders_open;
