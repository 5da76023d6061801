"""The executor's I/O: orders and books in PostgreSQL, prices in Redis, Binance over HTTP."""
