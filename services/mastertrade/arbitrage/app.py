"""create_app for arbitrage_service."""

from __future__ import annotations

from fastapi import FastAPI

from mastertrade.arbitrage.api import router
from mastertrade.arbitrage.settings import ArbitrageSettings
from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app

Settings = ArbitrageSettings


def create_app(settings: ArbitrageSettings) -> FastAPI:
    """The app, its connections opened in the lifespan."""
    return build_service_app(find_service("arbitrage_service"), settings, [router])
