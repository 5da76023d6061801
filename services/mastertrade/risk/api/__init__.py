"""HTTP routes of risk_manager: public reads and checks, and the admin calls."""

from mastertrade.risk.api.admin import router as admin_router
from mastertrade.risk.api.routes import router

__all__ = ["admin_router", "router"]
