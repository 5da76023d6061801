"""create_app for order_executor."""

from __future__ import annotations

from fastapi import FastAPI

from mastertrade.catalog import find_service
from mastertrade.core.app import build_service_app
from mastertrade.execution.api import router
from mastertrade.execution.settings import ExecutionSettings

Settings = ExecutionSettings


def create_app(settings: ExecutionSettings) -> FastAPI:
    """The app, its connections opened in the lifespan."""
    return build_service_app(find_service("order_executor"), settings, [router])
