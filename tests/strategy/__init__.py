"""Strategy families, the backtest engine and walk-forward ranking, against a plain reference."""
