"""strategy_service (seed port 8006): generates, backtests and runs strategies."""
