"""create_app for alert_system."""

from __future__ import annotations

from fastapi import FastAPI

from mastertrade.alerts.api import router
from mastertrade.alerts.settings import AlertSettings
from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app

Settings = AlertSettings


def create_app(settings: AlertSettings) -> FastAPI:
    """The app, its connections opened in the lifespan."""
    return build_service_app(find_service("alert_system"), settings, [router])
