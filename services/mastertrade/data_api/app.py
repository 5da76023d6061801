"""create_app for data_access_api."""

from __future__ import annotations

from fastapi import FastAPI

from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app
from mastertrade.core.settings import ServiceSettings
from mastertrade.data_api.api import router

Settings = ServiceSettings


def create_app(settings: ServiceSettings) -> FastAPI:
    """The app, its connections opened in the lifespan."""
    return build_service_app(find_service("data_access_api"), settings, [router])
