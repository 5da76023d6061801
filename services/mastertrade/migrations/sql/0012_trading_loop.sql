-- The trading loop: risk state and decisions, the executor's equity and outbox, alert delivery.
-- Amounts are NUMERIC; a spot position is never short and a balance never negative.

CREATE TABLE risk_state (
    environment        TEXT        PRIMARY KEY CHECK (environment IN ('paper', 'live')),
    equity_peak        NUMERIC     CHECK (equity_peak IS NULL OR equity_peak > 0),
    breaker_open       BOOLEAN     NOT NULL DEFAULT false,
    breaker_reason     TEXT,
    breaker_tripped_at TIMESTAMPTZ,
    kill_switch        BOOLEAN     NOT NULL DEFAULT false,
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE risk_decisions (
    signal_id          TEXT        PRIMARY KEY,
    environment        TEXT        NOT NULL CHECK (environment IN ('paper', 'live')),
    symbol             TEXT        NOT NULL,
    side               TEXT        NOT NULL CHECK (side IN ('buy', 'sell')),
    outcome            TEXT        NOT NULL CHECK (outcome IN ('approved', 'resized', 'rejected')),
    requested_quantity NUMERIC     NOT NULL CHECK (requested_quantity > 0),
    approved_quantity  NUMERIC     NOT NULL CHECK (approved_quantity >= 0),
    price              NUMERIC     NOT NULL CHECK (price > 0),
    reasons            JSONB       NOT NULL DEFAULT '[]'::jsonb,
    client_order_id    TEXT        UNIQUE,
    -- an approved buy whose order is not known to be finished: counted as exposure
    pending            BOOLEAN     NOT NULL DEFAULT false,
    decided_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX risk_decisions_recent ON risk_decisions (environment, decided_at DESC);
CREATE INDEX risk_decisions_pending ON risk_decisions (environment, symbol) WHERE pending;

CREATE TABLE account_equity (
    environment     TEXT        PRIMARY KEY CHECK (environment IN ('paper', 'live')),
    cash            NUMERIC     NOT NULL CHECK (cash >= 0),
    positions_value NUMERIC     NOT NULL CHECK (positions_value >= 0),
    equity          NUMERIC     NOT NULL CHECK (equity >= 0),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Events written in the same transaction as the state they describe, published afterwards:
-- a crash between commit and publish delays an event, never loses it.
CREATE TABLE outbox (
    id           BIGSERIAL   PRIMARY KEY,
    exchange     TEXT        NOT NULL,
    routing_key  TEXT        NOT NULL,
    payload      JSONB       NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

ALTER TABLE orders
    ADD COLUMN signal_ref      TEXT,
    ADD COLUMN reduce_only     BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN filled_quantity NUMERIC NOT NULL DEFAULT 0 CHECK (filled_quantity >= 0),
    ADD COLUMN average_price   NUMERIC CHECK (average_price IS NULL OR average_price > 0),
    ADD COLUMN fee             NUMERIC NOT NULL DEFAULT 0 CHECK (fee >= 0),
    ADD COLUMN reserved        NUMERIC NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    ADD COLUMN reason          TEXT;
CREATE INDEX orders_open ON orders (environment, status) WHERE status IN ('new', 'submitted');

ALTER TABLE positions ADD CONSTRAINT positions_not_short CHECK (quantity >= 0);

ALTER TABLE alerts
    ADD COLUMN kind      TEXT NOT NULL DEFAULT 'manual',
    ADD COLUMN dedup_key TEXT,
    ADD COLUMN source    TEXT,
    DROP CONSTRAINT alerts_status_check,
    ADD CONSTRAINT alerts_status_check
        CHECK (status IN ('pending', 'sent', 'partial', 'failed', 'suppressed'));
CREATE INDEX alerts_dedup ON alerts (dedup_key, created_at DESC) WHERE dedup_key IS NOT NULL;

CREATE TABLE alert_deliveries (
    id         BIGSERIAL   PRIMARY KEY,
    alert_id   BIGINT      NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    channel    TEXT        NOT NULL,
    status     TEXT        NOT NULL DEFAULT 'pending'
               CHECK (status IN ('pending', 'sent', 'failed', 'rate_limited')),
    attempts   INTEGER     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error TEXT,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (alert_id, channel)
);
