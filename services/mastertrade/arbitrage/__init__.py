"""arbitrage_service (seed port 8002): detects price differences between venues."""
