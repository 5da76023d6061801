-- The trading batches decide without holding a lock: each reads the state it decides on, with a
-- version, in one statement that writes nothing; its one write statement applies only if the
-- version is still the one it read (bumping it), else it writes nothing and the batch is decided
-- again on what is there now. A batch is two round trips and one commit, with no BEGIN, lock or
-- COMMIT round trip of its own; replicas still decide one batch after another, each on the state
-- the one before left.
--
-- `risk_state.version` changes with every risk batch and every admin change (breaker reset, kill
-- switch); `balances.version` with every paper batch, the only writer of a paper account's
-- balance, positions and orders.
ALTER TABLE risk_state ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE balances ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

-- A paper batch now records its new orders in its write statement (migration 0030's lock order is
-- gone with the locks).
DROP FUNCTION paper_record_and_lock(TEXT, TEXT, TEXT[], TEXT[], TEXT[], TEXT[], TEXT[], TEXT[],
    NUMERIC[], NUMERIC[], BOOLEAN[]);
