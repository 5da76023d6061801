"""market_data_service (seed port 8000): collects market data and publishes it on the bus."""
