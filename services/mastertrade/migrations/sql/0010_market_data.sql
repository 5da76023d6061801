-- Market data in: Binance's full kline fields on candles, and book tickers (top of book).
-- Candles stay keyed by (symbol, interval, open_time) and trades by (symbol, trade_id), as in
-- 0001; the added columns are NULL for candles written before this migration.

ALTER TABLE candles
    ADD COLUMN close_time             TIMESTAMPTZ,
    ADD COLUMN quote_volume           NUMERIC CHECK (quote_volume >= 0),
    ADD COLUMN trade_count            BIGINT  CHECK (trade_count >= 0),
    ADD COLUMN taker_buy_volume       NUMERIC CHECK (taker_buy_volume >= 0),
    ADD COLUMN taker_buy_quote_volume NUMERIC CHECK (taker_buy_quote_volume >= 0);

CREATE TABLE book_tickers (
    symbol       TEXT        NOT NULL,
    update_id    BIGINT      NOT NULL,
    bid_price    NUMERIC     NOT NULL CHECK (bid_price > 0),
    bid_quantity NUMERIC     NOT NULL CHECK (bid_quantity >= 0),
    ask_price    NUMERIC     NOT NULL CHECK (ask_price > 0),
    ask_quantity NUMERIC     NOT NULL CHECK (ask_quantity >= 0),
    received_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (symbol, update_id),
    CHECK (bid_price <= ask_price)
);
CREATE INDEX book_tickers_symbol_time ON book_tickers (symbol, received_at DESC);
