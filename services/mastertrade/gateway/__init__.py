"""api_gateway (seed port 8080): the one entry point in front of the core services."""
