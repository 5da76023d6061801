"""The infrastructure a MasterTrade service can depend on, named as in the seed's health JSON."""

from __future__ import annotations

from enum import StrEnum


class Dependency(StrEnum):
    """A dependency's name is its key under `checks` in /health and its metric label."""

    DATABASE = "database"
    RABBITMQ = "rabbitmq"
    REDIS = "redis"
