"""Fixtures of the end-to-end tier: a database and a vhost of each test's own (migrated, the
topology declared), the stack of processes (always stopped), and the local channel servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest

from mastertrade.core.bus import apply_topology
from mastertrade.migrations.runner import migrate_database
from tests.e2e.stack import Stack, stack_env
from tests.infra import create_database, create_vhost, delete_vhost, drop_database
from tests.services.conftest import REDIS_TEST_URL
from tests.services.fake_channels import CHAT, TOKEN, FakeChannels
from tests.services.fake_channels import build_app as build_channels
from tests.services.trading import serve_app

HOOK_SECRET = "e2e-hook-secret"


@pytest.fixture
def infra_env() -> Iterator[dict[str, str]]:
    database, vhost = create_database("mastertrade_e2e"), create_vhost("mastertrade_e2e")
    try:
        asyncio.run(migrate_database(database, 60.0, lambda line: None))
        asyncio.run(apply_topology(vhost, 60.0, lambda line: None))
        yield stack_env(database, vhost, REDIS_TEST_URL)
    finally:
        drop_database(database)
        delete_vhost(vhost)


@pytest.fixture
async def stack(infra_env: dict[str, str]) -> AsyncIterator[Stack]:
    running = Stack(infra_env)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def channels() -> AsyncIterator[tuple[FakeChannels, dict[str, str]]]:
    """The local Telegram, Slack and webhook servers, and the alert system's settings for them."""
    fake = FakeChannels()
    async with serve_app(build_channels(fake)) as url:
        yield (
            fake,
            {
                "TELEGRAM_BOT_TOKEN": TOKEN,
                "TELEGRAM_CHAT_ID": CHAT,
                "TELEGRAM_API_URL": url,
                "SLACK_WEBHOOK_URL": f"{url}/slack/webhook",
                "ALERT_WEBHOOK_URL": f"{url}/hook",
                "ALERT_WEBHOOK_SECRET": HOOK_SECRET,
                "ALERT_RATE_LIMIT_PER_MINUTE": "10000",
                "ALERT_RETRY_BASE_SECONDS": "0.1",
            },
        )
