"""create_app for api_gateway."""

from __future__ import annotations

from fastapi import FastAPI

from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app
from mastertrade.gateway.api import router
from mastertrade.gateway.settings import GatewaySettings

Settings = GatewaySettings


def create_app(settings: GatewaySettings) -> FastAPI:
    """The app, its connections opened in the lifespan."""
    return build_service_app(find_service("api_gateway"), settings, [router])
