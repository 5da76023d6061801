"""The alert system's I/O: history in PostgreSQL and the delivery channels."""
