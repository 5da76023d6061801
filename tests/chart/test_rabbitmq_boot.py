"""The chart's RabbitMQ configuration boots a real RabbitMQ that creates the credentials' user.

With `load_definitions` set RabbitMQ would skip creating RABBITMQ_DEFAULT_USER; this test starts
a private node (its own ports and data directory, never the machine's broker) from the rendered
rabbitmq.config and logs in over AMQP as the user given in the environment, as the pod does.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest

from tests.chart.test_config_files import files_of
from tests.helm import Manifest

pytestmark = pytest.mark.infra

AMQP_PORT, MANAGEMENT_PORT, DIST_PORT = 35672, 35673, 35674
NODE = "mastertrade-chart-check@localhost"


def private_config(rendered: str) -> str:
    """The rendered file with the pod's ports moved off the machine's own broker."""
    moved = rendered.replace("[5672]", f"[{AMQP_PORT}]").replace(
        "{port, 15672}", f"{{port, {MANAGEMENT_PORT}}}"
    )
    assert moved.count(str(AMQP_PORT)) == 1 and moved.count(str(MANAGEMENT_PORT)) == 1
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


@pytest.fixture
def node_dir() -> Iterator[Path]:
    """A data directory the broker's own user can reach (pytest's node_dir is root-only)."""
    path = Path(tempfile.mkdtemp(prefix="mastertrade-rabbitmq-"))
    if os.geteuid() == 0:  # Debian's rabbitmq-server drops to the rabbitmq user
        shutil.chown(path, "rabbitmq")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_default_user_comes_from_the_environment(
    default_render: list[Manifest], node_dir: Path
) -> None:
    server = shutil.which("rabbitmq-server")
    if server is None:
        raise RuntimeError("rabbitmq-server not found: .ci/run installs it (Debian package)")
    config = node_dir / "rabbitmq.config"
    config.write_text(private_config(files_of(default_render, "rabbitmq")["rabbitmq.config"]))
    env = {
        **os.environ,
        "RABBITMQ_CONFIG_FILE": str(config),
        "RABBITMQ_DEFAULT_USER": "chartuser",
        "RABBITMQ_DEFAULT_PASS": "Chart0Password",
        "RABBITMQ_DEFAULT_VHOST": "/",
        "RABBITMQ_NODENAME": NODE,
        "RABBITMQ_MNESIA_BASE": str(node_dir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(node_dir / "log"),
        "RABBITMQ_DIST_PORT": str(DIST_PORT),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(node_dir / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(node_dir / "rabbitmq.pid"),
    }
    subprocess.run([server, "-detached"], env=env, check=True, timeout=30)
    try:
        url = f"amqp://chartuser:Chart0Password@127.0.0.1:{AMQP_PORT}/"
        asyncio.run(login(url, time.monotonic() + 60))
    finally:
        subprocess.run(
            ["rabbitmqctl", "-n", NODE, "stop"],
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )
    log = (node_dir / "log" / f"{NODE}.log").read_text()
    assert "Created user 'chartuser'" in log
