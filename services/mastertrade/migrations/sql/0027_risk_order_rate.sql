-- The order rate limit counted per second: the risk manager used to count the last minute's
-- decisions on every batch, a scan that grows with the rate (12,000 index entries a batch at 200
-- orders/s). Each batch now adds its approvals to the current second's bucket and the limit reads
-- at most 61 buckets, whatever the rate.

CREATE TABLE risk_order_rate (
    environment TEXT        NOT NULL CHECK (environment IN ('paper', 'live')),
    second      TIMESTAMPTZ NOT NULL,
    orders      INTEGER     NOT NULL CHECK (orders > 0),
    PRIMARY KEY (environment, second)
);

-- An upgrade while trading keeps the window it had: the last two minutes' approvals, bucketed.
INSERT INTO risk_order_rate (environment, second, orders)
SELECT environment, date_trunc('second', decided_at), count(*)
FROM risk_decisions
WHERE outcome <> 'rejected' AND decided_at > now() - interval '2 minutes'
GROUP BY 1, 2;
