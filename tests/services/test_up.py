"""`mastertrade up` brings the whole stack up as local processes and Ctrl-C brings it down."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from mastertrade.catalog import SERVICES, find_service
from mastertrade.local_stack import plan_ports

pytestmark = pytest.mark.infra

MASTERTRADE = str(Path(sys.executable).with_name("mastertrade"))


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def free_offset() -> int:
    """A port offset under which every service's port is free, below the ephemeral range
    (32768 and up), where client sockets of the other tests could take a port at any time."""
    for _ in range(50):
        offset = random.randrange(10_000, 22_000, 100)
        if all(port_is_free(port) for port in plan_ports(SERVICES, offset).values()):
            return offset
    raise AssertionError("no free range of ports")


class OutputReader:
    """Reads a process' output in a thread, so its pipe never fills while the test waits."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._process = process
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line)

    def wait_for(self, marker: str, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(marker in line for line in self.lines):
                return list(self.lines)
            if self._process.poll() is not None and not self._thread.is_alive():
                break
            time.sleep(0.1)
        raise AssertionError(f"no {marker!r} in time; output:\n{''.join(self.lines)}")

    def rest(self, timeout: float) -> str:
        """All the output, once the process has closed it."""
        self._thread.join(timeout)
        assert self._process.stdout is not None
        self._process.stdout.close()
        return "".join(self.lines)


def listed_statuses(url: str, expected: set[str], within: float = 10.0) -> dict[str, str]:
    """The gateway's listing of each service's status, once every one in `expected` is
    healthy, or as it is `within` seconds later."""
    deadline = time.monotonic() + within
    while True:
        found = {name: info["status"] for name, info in httpx.get(url, timeout=10).json().items()}
        if found == dict.fromkeys(expected, "healthy") or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_up_runs_every_service_and_ctrl_c_stops_them(service_env: dict[str, str]) -> None:
    offset = free_offset()
    ports = plan_ports(SERVICES, offset)
    # Nine services start at once on a small machine: generous dependency timeouts.
    env = {**os.environ, **service_env, "DEPENDENCY_TIMEOUT": "5"}
    process = subprocess.Popen(
        [MASTERTRADE, "up", "--port-offset", str(offset), "--healthy-timeout", "240"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group: a failed test kills all it started
    )  # fmt: skip
    output = OutputReader(process)
    try:
        started = output.wait_for("MasterTrade is up", timeout=300)
        for spec in SERVICES:
            assert any(f"{spec.name} healthy" in line for line in started), spec.name
        gateway = f"http://127.0.0.1:{ports['api_gateway']}/api/v1/services"
        # the services the catalog's api-gateway entry names in serviceUrls, every one healthy
        # (the listing may be one the UI's poll had taken while they started: fresh within 2 s)
        fronted = set(find_service("api_gateway").upstream_variables.values())
        assert listed_statuses(gateway, fronted) == dict.fromkeys(fronted, "healthy")
        assert "data_access_api" in fronted
        ui = f"http://127.0.0.1:{ports['monitoring_ui']}/api/status"
        assert {info["status"] for info in httpx.get(ui, timeout=10).json().values()} == {"healthy"}
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        rest = output.rest(timeout=10)
    assert process.returncode == 0, rest
    for spec in SERVICES:
        assert f"stopped {spec.name} (exit 0)" in rest
    assert all(port_is_free(port) for port in ports.values())
