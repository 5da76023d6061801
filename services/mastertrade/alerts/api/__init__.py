"""HTTP routes of alert_system."""

from mastertrade.alerts.api.admin import admin_router
from mastertrade.alerts.api.alertmanager import alertmanager_router
from mastertrade.alerts.api.routes import router

__all__ = ["admin_router", "alertmanager_router", "router"]
