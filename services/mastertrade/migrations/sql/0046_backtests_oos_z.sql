-- The t-statistic of a backtest's out-of-sample record (mean / std x sqrt(bars) of its per-bar
-- returns), which a run's end compares with what the luckiest of the run's candidates would
-- show without skill (the deflated Sharpe ratio, `strategy/domain/plan.py`). NULL for a
-- backtest not ranked, or written by code from before it: such a candidate is activated only
-- at STRATEGY_MIN_CONFIDENCE=0.
ALTER TABLE backtests ADD COLUMN oos_z DOUBLE PRECISION;
