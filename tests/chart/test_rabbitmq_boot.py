"""The chart's RabbitMQ configuration boots a real RabbitMQ that creates the credentials' user.

With `load_definitions` set RabbitMQ would skip creating RABBITMQ_DEFAULT_USER; this test starts
a private node (its own ports and data directory, never the machine's broker) from the rendered
rabbitmq.config and logs in over AMQP as the user given in the environment, as the pod does.
"""

from __future__ import annotations

import asyncio
import time

import aio_pika
import pytest

from tests.chart.test_config_files import files_of
from tests.helm import Manifest
from tests.infra import PrivateRabbit

pytestmark = pytest.mark.infra


def private_config(rendered: str, amqp_port: int, management_port: int) -> str:
    """The rendered file with the pod's ports moved off the machine's own broker."""
    moved = rendered.replace("[5672]", f"[{amqp_port}]").replace(
        "{port, 15672}", f"{{port, {management_port}}}"
    )
    assert f"[{amqp_port}]" in moved and f"{{port, {management_port}}}" in moved
    return moved


async def login(url: str, deadline: float) -> None:
    while True:
        try:
            connection = await aio_pika.connect(url, timeout=2)
        except (aio_pika.exceptions.AMQPConnectionError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
        else:
            await connection.close()
            return


def test_default_user_comes_from_the_environment(default_render: list[Manifest]) -> None:
    rendered = files_of(default_render, "rabbitmq")["rabbitmq.config"]
    rabbit = PrivateRabbit(
        config_for=lambda amqp, management: private_config(rendered, amqp, management),
        env={"RABBITMQ_DEFAULT_USER": "chartuser", "RABBITMQ_DEFAULT_PASS": "Chart0Password"},
    )
    try:
        rabbit.start()
        url = f"amqp://chartuser:Chart0Password@127.0.0.1:{rabbit.port}/"
        asyncio.run(login(url, time.monotonic() + 60))
        rabbit.stop()  # the node writes its log out as it stops
        assert "Created user 'chartuser'" in rabbit.log()
    finally:
        rabbit.remove()
