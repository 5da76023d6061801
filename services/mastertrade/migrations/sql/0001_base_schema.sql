-- Base schema: what the later issues store. Amounts are NUMERIC (never floats); times are UTC.

CREATE TABLE candles (
    symbol      TEXT        NOT NULL,
    interval    TEXT        NOT NULL,
    open_time   TIMESTAMPTZ NOT NULL,
    open        NUMERIC     NOT NULL,
    high        NUMERIC     NOT NULL,
    low         NUMERIC     NOT NULL,
    close       NUMERIC     NOT NULL,
    volume      NUMERIC     NOT NULL CHECK (volume >= 0),
    PRIMARY KEY (symbol, interval, open_time),
    CHECK (low <= high)
);

CREATE TABLE trades (
    id          BIGSERIAL   PRIMARY KEY,
    symbol      TEXT        NOT NULL,
    trade_id    TEXT        NOT NULL,
    price       NUMERIC     NOT NULL CHECK (price > 0),
    quantity    NUMERIC     NOT NULL CHECK (quantity > 0),
    side        TEXT        NOT NULL CHECK (side IN ('buy', 'sell')),
    traded_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (symbol, trade_id)
);
CREATE INDEX trades_symbol_time ON trades (symbol, traded_at DESC);

CREATE TABLE strategies (
    id          BIGSERIAL   PRIMARY KEY,
    name        TEXT        NOT NULL UNIQUE,
    status      TEXT        NOT NULL DEFAULT 'generated'
                CHECK (status IN ('generated', 'backtested', 'active', 'paused', 'retired')),
    parameters  JSONB       NOT NULL DEFAULT '{}'::jsonb,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE backtests (
    id          BIGSERIAL   PRIMARY KEY,
    strategy_id BIGINT      NOT NULL REFERENCES strategies (id) ON DELETE CASCADE,
    status      TEXT        NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'running', 'done', 'failed')),
    period_from TIMESTAMPTZ,
    period_to   TIMESTAMPTZ,
    metrics     JSONB       NOT NULL DEFAULT '{}'::jsonb,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at TIMESTAMPTZ
);

CREATE TABLE signals (
    id          BIGSERIAL   PRIMARY KEY,
    strategy_id BIGINT      REFERENCES strategies (id) ON DELETE SET NULL,
    symbol      TEXT        NOT NULL,
    side        TEXT        NOT NULL CHECK (side IN ('buy', 'sell')),
    strength    NUMERIC     NOT NULL DEFAULT 1,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    client_order_id   TEXT        PRIMARY KEY,
    exchange_order_id TEXT,
    signal_id         BIGINT      REFERENCES signals (id) ON DELETE SET NULL,
    symbol            TEXT        NOT NULL,
    side              TEXT        NOT NULL CHECK (side IN ('buy', 'sell')),
    type              TEXT        NOT NULL CHECK (type IN ('market', 'limit')),
    quantity          NUMERIC     NOT NULL CHECK (quantity > 0),
    price             NUMERIC     CHECK (price IS NULL OR price > 0),
    status            TEXT        NOT NULL DEFAULT 'new'
                      CHECK (status IN ('new', 'submitted', 'partially_filled', 'filled',
                                        'cancelled', 'rejected')),
    environment       TEXT        NOT NULL CHECK (environment IN ('paper', 'live')),
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX orders_created ON orders (created_at DESC);

CREATE TABLE fills (
    id              BIGSERIAL   PRIMARY KEY,
    client_order_id TEXT        NOT NULL REFERENCES orders (client_order_id) ON DELETE CASCADE,
    fill_id         TEXT        NOT NULL,
    price           NUMERIC     NOT NULL CHECK (price > 0),
    quantity        NUMERIC     NOT NULL CHECK (quantity > 0),
    fee             NUMERIC     NOT NULL DEFAULT 0,
    fee_asset       TEXT,
    filled_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (client_order_id, fill_id)
);

CREATE TABLE positions (
    environment   TEXT        NOT NULL CHECK (environment IN ('paper', 'live')),
    symbol        TEXT        NOT NULL,
    quantity      NUMERIC     NOT NULL DEFAULT 0,
    average_price NUMERIC     NOT NULL DEFAULT 0,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (environment, symbol)
);

CREATE TABLE balances (
    environment TEXT        NOT NULL CHECK (environment IN ('paper', 'live')),
    asset       TEXT        NOT NULL,
    free        NUMERIC     NOT NULL DEFAULT 0 CHECK (free >= 0),
    locked      NUMERIC     NOT NULL DEFAULT 0 CHECK (locked >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (environment, asset)
);

CREATE TABLE risk_events (
    id              BIGSERIAL   PRIMARY KEY,
    kind            TEXT        NOT NULL,
    severity        TEXT        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    client_order_id TEXT        REFERENCES orders (client_order_id) ON DELETE SET NULL,
    details         JSONB       NOT NULL DEFAULT '{}'::jsonb,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE alerts (
    id          BIGSERIAL   PRIMARY KEY,
    severity    TEXT        NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    title       TEXT        NOT NULL,
    message     TEXT        NOT NULL DEFAULT '',
    channel     TEXT,
    status      TEXT        NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'sent', 'failed')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX alerts_created ON alerts (created_at DESC);
