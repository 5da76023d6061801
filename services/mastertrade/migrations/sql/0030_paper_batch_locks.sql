-- A paper batch's record and locks in one round trip where they took four: the approved orders
-- recorded as `new` (those already there left), then the orders asked for locked in client order
-- id order, then the environment's quote balance, then every position (the books' lock order;
-- see books.py). Each statement of the function sees the ones before it, as the four statements
-- of the transaction did.

CREATE FUNCTION paper_record_and_lock(
    batch_environment TEXT, batch_asset TEXT, batch_ids TEXT[],
    new_ids TEXT[], new_signal_refs TEXT[], new_symbols TEXT[], new_sides TEXT[],
    new_types TEXT[], new_quantities NUMERIC[], new_prices NUMERIC[], new_reduce_only BOOLEAN[]
) RETURNS SETOF orders LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO orders (client_order_id, signal_ref, symbol, side, type, quantity, price,
        reduce_only, environment)
    SELECT *, batch_environment
    FROM unnest(new_ids, new_signal_refs, new_symbols, new_sides, new_types, new_quantities,
                new_prices, new_reduce_only)
    ON CONFLICT (client_order_id) DO NOTHING;
    RETURN QUERY
        SELECT * FROM orders WHERE client_order_id = ANY(batch_ids)
        ORDER BY client_order_id FOR UPDATE;
    PERFORM 1 FROM balances
    WHERE environment = batch_environment AND asset = batch_asset FOR UPDATE;
    PERFORM 1 FROM positions WHERE environment = batch_environment ORDER BY symbol FOR UPDATE;
END
$$;
