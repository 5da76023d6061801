-- The strategy service's daily generation: runs (one per day key), their shards (the unit of
-- work a pod or an Indexed Job pod claims), and what each candidate measured. Adds nullable
-- columns only to strategies and backtests, so the data access API's reads keep working.

CREATE TABLE generation_runs (
    id           BIGSERIAL   PRIMARY KEY,
    -- 'daily:YYYY-MM-DD' for the scheduled (or first start-up) run of a day, 'api:<id>' for
    -- one started on demand: the UNIQUE key is what makes one generation per day across replicas
    run_key      TEXT        NOT NULL UNIQUE,
    trigger      TEXT        NOT NULL CHECK (trigger IN ('schedule', 'startup', 'api')),
    requested_by TEXT,
    seed         BIGINT      NOT NULL,
    candidates   INTEGER     NOT NULL CHECK (candidates >= 0),
    shard_count  INTEGER     NOT NULL CHECK (shard_count >= 0),
    -- what every shard reads, fixed when the run starts: its symbols and the candles before as_of
    symbols      TEXT[]      NOT NULL,
    as_of        TIMESTAMPTZ NOT NULL,
    status       TEXT        NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'done', 'failed')),
    error        TEXT,
    active_after INTEGER,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at  TIMESTAMPTZ
);
-- At most one run in progress at a time, whatever started it
CREATE UNIQUE INDEX generation_runs_one_running ON generation_runs ((true))
    WHERE status = 'running';

CREATE TABLE generation_shards (
    run_id      BIGINT      NOT NULL REFERENCES generation_runs (id) ON DELETE CASCADE,
    shard       INTEGER     NOT NULL CHECK (shard >= 0),
    first_index INTEGER     NOT NULL CHECK (first_index >= 0),
    last_index  INTEGER     NOT NULL CHECK (last_index >= first_index),  -- exclusive
    status      TEXT        NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'running', 'done', 'failed')),
    attempts    INTEGER     NOT NULL DEFAULT 0,
    claimed_by  TEXT,
    lease_until TIMESTAMPTZ,
    error       TEXT,
    finished_at TIMESTAMPTZ,
    PRIMARY KEY (run_id, shard)
);

ALTER TABLE strategies
    ADD COLUMN IF NOT EXISTS run_id          BIGINT REFERENCES generation_runs (id) ON DELETE SET NULL,
    ADD COLUMN IF NOT EXISTS candidate_index INTEGER,
    ADD COLUMN IF NOT EXISTS symbol          TEXT,
    ADD COLUMN IF NOT EXISTS family          TEXT,
    ADD COLUMN IF NOT EXISTS score           NUMERIC,
    ADD COLUMN IF NOT EXISTS rank            INTEGER,
    ADD COLUMN IF NOT EXISTS activated_at    TIMESTAMPTZ;
CREATE UNIQUE INDEX IF NOT EXISTS strategies_run_candidate ON strategies (run_id, candidate_index);
CREATE INDEX IF NOT EXISTS strategies_active ON strategies (status) WHERE status = 'active';

ALTER TABLE backtests
    ADD COLUMN IF NOT EXISTS run_id        BIGINT REFERENCES generation_runs (id) ON DELETE SET NULL,
    ADD COLUMN IF NOT EXISTS symbol        TEXT,
    ADD COLUMN IF NOT EXISTS bars          INTEGER,
    ADD COLUMN IF NOT EXISTS initial_cash  NUMERIC,
    ADD COLUMN IF NOT EXISTS final_equity  NUMERIC,
    ADD COLUMN IF NOT EXISTS total_return  NUMERIC,
    ADD COLUMN IF NOT EXISTS sharpe        NUMERIC,
    ADD COLUMN IF NOT EXISTS max_drawdown  NUMERIC,
    ADD COLUMN IF NOT EXISTS win_rate      NUMERIC,
    ADD COLUMN IF NOT EXISTS trades        INTEGER,
    ADD COLUMN IF NOT EXISTS oos_score     NUMERIC,
    ADD COLUMN IF NOT EXISTS oos_return    NUMERIC,
    ADD COLUMN IF NOT EXISTS equity_curve  JSONB;
CREATE INDEX IF NOT EXISTS backtests_strategy ON backtests (strategy_id);
