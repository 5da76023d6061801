-- Two indexes that cost every signal an index entry and serve nothing. orders_created
-- (created_at DESC) repeats orders_created_id (created_at, client_order_id), which a backward
-- scan reads in the same order for the same queries (the executor's latest orders, the data
-- API's pages). positions_updated served a keyset the data API no longer pages positions by
-- (their primary key, which never changes, data_api/resources.py); on a table updated at every
-- fill it also kept each update from being HOT (an indexed column changed), so every update
-- wrote an entry in each of the table's indexes.
DROP INDEX IF EXISTS orders_created;
DROP INDEX IF EXISTS positions_updated;
