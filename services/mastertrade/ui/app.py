"""create_app for monitoring_ui."""

from __future__ import annotations

from fastapi import FastAPI

from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app
from mastertrade.ui.api import router
from mastertrade.ui.settings import UiSettings

Settings = UiSettings


def create_app(settings: UiSettings) -> FastAPI:
    """The app (no connections: the UI only calls other services over HTTP)."""
    return build_service_app(find_service("monitoring_ui"), settings, [router])
