"""HTTP routes of order_executor."""

from mastertrade.execution.api.routes import router

__all__ = ["router"]
