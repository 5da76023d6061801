"""HTTP routes of alert_system."""

from mastertrade.alerts.api.routes import router

__all__ = ["router"]
