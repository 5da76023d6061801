"""The risk manager's I/O: its state and decisions in PostgreSQL."""
