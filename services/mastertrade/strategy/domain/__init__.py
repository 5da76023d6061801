"""Pure domain of strategy_service: schedules, strategy families, the backtest engine, ranking.

Imports numpy, numba and pydantic only; no I/O.
"""

from mastertrade.strategy.domain.schedule import next_generation_at

__all__ = ["next_generation_at"]
