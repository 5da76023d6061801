"""create_app for strategy_service."""

from __future__ import annotations

from fastapi import FastAPI

from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app
from mastertrade.strategy.api import router
from mastertrade.strategy.settings import StrategySettings

Settings = StrategySettings


def create_app(settings: StrategySettings) -> FastAPI:
    """The app, its connections opened in the lifespan."""
    return build_service_app(find_service("strategy_service"), settings, [router])
