"""create_app for risk_manager."""

from __future__ import annotations

from fastapi import FastAPI

from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app
from mastertrade.risk.api import router
from mastertrade.risk.settings import RiskSettings

Settings = RiskSettings


def create_app(settings: RiskSettings) -> FastAPI:
    """The app, its connections opened in the lifespan."""
    return build_service_app(find_service("risk_manager"), settings, [router])
