"""order_executor (seed port 8081): executes approved orders, paper by default, live on ask."""
