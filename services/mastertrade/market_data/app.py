"""create_app for market_data_service."""

from __future__ import annotations

from fastapi import FastAPI

from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app
from mastertrade.market_data.api import router
from mastertrade.market_data.settings import MarketDataSettings

Settings = MarketDataSettings


def create_app(settings: MarketDataSettings) -> FastAPI:
    """The app, its connections opened in the lifespan."""
    return build_service_app(find_service("market_data_service"), settings, [router])
