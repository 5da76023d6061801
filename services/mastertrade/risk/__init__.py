"""risk_manager (seed port 8080): validates orders against risk limits, trips circuit breakers."""
