"""create_app for data_access_api."""

from __future__ import annotations

from fastapi import FastAPI

from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app
from mastertrade.data_api.api import router
from mastertrade.data_api.export import Exports
from mastertrade.data_api.settings import DataApiSettings

Settings = DataApiSettings


def create_app(settings: DataApiSettings) -> FastAPI:
    """The app, its connections opened in the lifespan."""
    app = build_service_app(find_service("data_access_api"), settings, [router])
    app.state.exports = Exports(settings.export_limits())
    return app
