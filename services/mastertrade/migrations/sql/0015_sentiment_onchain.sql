-- What the sentiment (Twitter, Reddit, LunarCrush) and on-chain (Glassnode, Moralis) collectors
-- store: one row per source, subject (an asset, a subreddit, a token contract), metric and time.
-- Values are exact NUMERIC, checked finite and bounded before they get here. A row is
-- upserted, so a provider revising its latest point (Glassnode does) replaces it.

CREATE TABLE external_metrics (
    source       TEXT        NOT NULL
        CHECK (source IN ('twitter', 'reddit', 'lunarcrush', 'glassnode', 'moralis')),
    kind         TEXT        NOT NULL CHECK (kind IN ('sentiment', 'onchain')),
    subject      TEXT        NOT NULL CHECK (length(subject) BETWEEN 1 AND 100),
    metric       TEXT        NOT NULL CHECK (length(metric) BETWEEN 1 AND 100),
    observed_at  TIMESTAMPTZ NOT NULL,
    value        NUMERIC     NOT NULL,
    collected_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (source, subject, metric, observed_at)
);
-- the data access API's keyset order (time, then the rest of the key): pages are range scans
CREATE INDEX external_metrics_time ON external_metrics (observed_at, source, subject, metric);
