"""data_access_api (seed port 8005): historical data from PostgreSQL, cached in Redis."""
