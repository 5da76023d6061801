"""The `mastertrade` console script as a real process: serve, SIGTERM, bad settings, migrate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.infra import free_port

pytestmark = pytest.mark.infra

MASTERTRADE = str(Path(sys.executable).with_name("mastertrade"))


def run_cli(
    *args: str, env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MASTERTRADE, *args], env={**os.environ, **env}, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def wait_healthy(url: str, process: subprocess.Popen[str], timeout: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the service exited while starting"
        try:
            response = httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        if response.status_code == 200:
            return response
        time.sleep(0.1)
    raise AssertionError(f"{url} not healthy after {timeout}s")


def test_serve_answers_and_stops_cleanly_on_sigterm(service_env: dict[str, str]) -> None:
    port = free_port()
    env = {**os.environ, **service_env, "LOG_FORMAT": "json"}
    process = subprocess.Popen(
        [MASTERTRADE, "serve", "strategy-service", "--port", str(port), "--host", "127.0.0.1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        health = wait_healthy(f"http://127.0.0.1:{port}/health", process)
        assert health.json()["service"] == "strategy_service"
        schedule = httpx.get(f"http://127.0.0.1:{port}/api/v1/schedule", timeout=5).json()
        assert schedule["daily_generation_count"] == 500
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert '"message": "stopping strategy_service"' in stderr
    assert '"level": "info", "service": "strategy_service"' in stderr
    assert "Application shutdown complete" in stderr


class SlowHealth(BaseHTTPRequestHandler):
    """An upstream that takes a second and a half to say it is healthy."""

    def do_GET(self) -> None:
        time.sleep(1.5)
        body = json.dumps({"status": "healthy"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        del format, args


def test_sigterm_lets_the_request_in_flight_finish(service_env: dict[str, str]) -> None:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), SlowHealth)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = free_port()
    env = {
        **os.environ, **service_env, "DEPENDENCY_TIMEOUT": "5",
        "MARKET_DATA_SERVICE_URL": f"http://127.0.0.1:{upstream.server_address[1]}",
    }  # fmt: skip
    process = subprocess.Popen(
        [MASTERTRADE, "serve", "api-gateway", "--port", str(port), "--host", "127.0.0.1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    answers: list[httpx.Response] = []
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", process)
        url = f"http://127.0.0.1:{port}/api/v1/services"
        request = threading.Thread(target=lambda: answers.append(httpx.get(url, timeout=10)))
        request.start()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        request.join(timeout=10)
        _, stderr = process.communicate(timeout=20)
    finally:
        upstream.shutdown()
        upstream.server_close()
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert len(answers) == 1
    assert answers[0].status_code == 200
    assert answers[0].json()["market_data_service"]["status"] == "healthy"


def test_a_bad_setting_stops_start_up_with_a_clear_message(service_env: dict[str, str]) -> None:
    result = run_cli(
        "serve", "strategy_service", "--port", str(free_port()),
        env={**service_env, "MAX_ACTIVE_STRATEGIES": "lots", "GENERATION_TIME": "3pm"},
    )  # fmt: skip
    assert result.returncode == 2
    assert "invalid settings for strategy_service" in result.stderr
    assert "MAX_ACTIVE_STRATEGIES: got 'lots'" in result.stderr
    assert "GENERATION_TIME: got '3pm'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_url_stops_start_up_with_a_clear_message(service_env: dict[str, str]) -> None:
    env = {**service_env, "REDIS_URL": ""}
    result = run_cli("serve", "market-data-service", "--port", str(free_port()), env=env)
    assert result.returncode == 2
    assert "REDIS_URL: missing: required by this service" in result.stderr


def test_an_unknown_service_is_refused() -> None:
    result = run_cli("serve", "trading-bot", env={})
    assert result.returncode == 2
    assert "unknown service 'trading-bot'" in result.stderr
    assert "market-data-service" in result.stderr


def test_migrate_applies_then_finds_nothing_to_do(
    empty_database_url: str, rabbitmq_url: str
) -> None:
    env = {"DATABASE_URL": empty_database_url, "RABBITMQ_URL": rabbitmq_url}
    first = run_cli("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "applying 0001_base_schema" in first.stdout
    assert "declared 5 exchanges and 6 queues" in first.stdout
    second = run_cli("migrate", env=env)
    assert second.returncode == 0, second.stderr
    assert "nothing to apply" in second.stdout


def test_migrate_waits_for_postgres_then_gives_up_clearly() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/mastertrade"
    started = time.monotonic()
    result = run_cli("migrate", "--timeout", "3", env={"DATABASE_URL": url, "RABBITMQ_URL": ""})
    assert time.monotonic() - started >= 3
    assert result.returncode == 1
    assert "waiting for PostgreSQL at postgresql://postgres@127.0.0.1" in result.stdout
    assert "not reachable after 3s" in result.stderr
