"""Benchmark: the monitoring UI's first paint and time to first data on loopback, beside a bare
page doing the same work in the same run.

`mastertrade serve monitoring_ui` reads stand-in upstreams (an in-process server answering the
gateway's and the data access API's routes with 20 rows each, so the UI's own cost is what is
measured, not the database's). Debian's headless Chromium (Playwright) opens the dashboard in
a fresh context each time and reads, from the page's own Performance timeline, the first
contentful paint and the `mastertrade:first-data` mark (the first snapshot drawn). The
reference is a bare page on the same kind of server: one HTML file whose inline script fetches
a snapshot of the same size and writes it into the page, then marks. Target: first data under
500 ms at the median on loopback.

    .venv/bin/python bench/ui.py [--runs 15]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from playwright.async_api import async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.httpbench import MASTERTRADE, percentile, table
from tests.infra import free_port

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
TARGET_FIRST_DATA_MS = 500.0
ROWS = 20
REFERENCE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>reference</title>
</head><body><h1>reference</h1><pre id="out">loading</pre><script>
fetch('/reference/data').then(r => r.json()).then(d => {
  document.getElementById('out').textContent = JSON.stringify(d).slice(0, 2000);
  performance.mark('mastertrade:first-data');
});
</script></body></html>"""


def rows(**fields: Any) -> dict[str, Any]:
    return {"data": [{**fields, "id": i} for i in range(ROWS)], "count": ROWS, "next_cursor": None}


def stand_in(snapshot: dict[str, bytes]) -> FastAPI:
    """The gateway's and the data access API's answers the UI reads, and the reference page."""
    app = FastAPI()
    time_ = "2026-01-01T00:00:00+00:00"
    answers: dict[str, Any] = {
        "/health": {"status": "healthy"},
        "/api/v1/services": {name: {"status": "healthy"} for name in
                             ("risk_manager", "order_executor", "data_access_api")},
        "/api/risk-manager/api/v1/state": {"equity": "10500", "equity_peak": "11000",
                                           "breaker_open": False, "kill_switch": False},
        "/api/risk-manager/api/v1/limits": {"max_portfolio_drawdown_pct": "0.15"},
        "/api/order-executor/api/v1/account": {
            "environment": "paper", "paper_initial_balance": "10000", "balances": [],
            "positions": [{"symbol": "BTCUSDT", "quantity": "0.1", "average_price": "30000"}],
            "equity": {"equity": "10500", "cash": "7500", "positions_value": "3000",
                       "updated_at": time_},
        },
        "/api/v1/orders": rows(client_order_id="mt-1", symbol="BTCUSDT", side="buy",
                               type="market", quantity="0.1", price="30000", status="filled",
                               created_at=time_),
        "/api/v1/fills": rows(client_order_id="mt-1", price="30000", quantity="0.1", fee="3",
                              fee_asset="USDT", filled_at=time_),
        "/api/v1/alerts": rows(severity="info", title="Order filled", message="0.1 BTCUSDT",
                               created_at=time_),
        "/api/v1/strategies": rows(name="sma", status="active", created_at=time_),
        "/api/v1/backtests": rows(strategy_id=1, status="done", created_at=time_,
                                  metrics={"total_return": "0.1"}),
        "/api/v1/candles/BTCUSDT": rows(close="31000"),
    }  # fmt: skip

    for path, body in answers.items():
        app.add_api_route(path, lambda body=body: body)

    @app.get("/reference")
    async def reference() -> HTMLResponse:
        return HTMLResponse(REFERENCE)

    @app.get("/reference/data")
    async def reference_data() -> Response:
        return Response(snapshot["body"], media_type="application/json")

    return app


@contextlib.contextmanager
def in_thread(app: FastAPI) -> Iterator[int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def dashboard(upstream: int) -> Iterator[int]:
    port = free_port()
    url = f"http://127.0.0.1:{upstream}"
    env = {**os.environ, "API_GATEWAY_URL": url, "DATA_ACCESS_API_URL": url,
           "UI_POLL_SECONDS": "2", "LOG_LEVEL": "WARNING"}  # fmt: skip
    process = subprocess.Popen(
        [str(MASTERTRADE), "serve", "monitoring_ui", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the monitoring UI did not start")
            time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


async def measure(urls: dict[str, str], runs: int) -> dict[str, dict[str, list[float]]]:
    """First contentful paint and first data (ms from navigation start) per page and run,
    the pages taking turns so drift of a shared machine touches both alike."""
    found: dict[str, dict[str, list[float]]] = {n: {"paint": [], "data": []} for n in urls}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        for run in range(runs + 2):  # two warm-up rounds
            for name, url in urls.items():
                context = await browser.new_context()
                page = await context.new_page()
                await page.goto(url)
                await page.wait_for_function(
                    "() => performance.getEntriesByName('mastertrade:first-data').length > 0"
                )
                paint, data = await page.evaluate(
                    "() => [performance.getEntriesByName('first-contentful-paint')[0].startTime,"
                    " performance.getEntriesByName('mastertrade:first-data')[0].startTime]"
                )
                await context.close()
                if run >= 2:
                    found[name]["paint"].append(paint)
                    found[name]["data"].append(data)
        await browser.close()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    snapshot: dict[str, bytes] = {"body": b"{}"}
    with in_thread(stand_in(snapshot)) as upstream, dashboard(upstream) as ui:
        body = httpx.get(f"http://127.0.0.1:{ui}/api/snapshot").content
        assert all(part["ok"] for part in json.loads(body).values() if isinstance(part, dict))
        snapshot["body"] = body  # the reference fetches a snapshot of the same size
        urls = {"dashboard": f"http://127.0.0.1:{ui}/",
                "bare page (reference)": f"http://127.0.0.1:{upstream}/reference"}  # fmt: skip
        found = asyncio.run(measure(urls, args.runs))
    lines = [["page", "paint p50 ms", "paint p90 ms", "first data p50 ms", "first data p90 ms"]]
    for name, times in found.items():
        lines.append([name] + [f"{percentile(times[kind], q):.1f}" for kind in ("paint", "data")
                               for q in (0.5, 0.9)])  # fmt: skip
    print(f"monitoring UI on loopback, {args.runs} fresh page loads each, snapshot "
          f"{len(snapshot['body'])} bytes")  # fmt: skip
    print(table(lines))
    median = percentile(found["dashboard"]["data"], 0.5)
    verdict = "meets" if median < TARGET_FIRST_DATA_MS else "MISSES"
    print(f"first data p50 {median:.1f} ms: {verdict} the {TARGET_FIRST_DATA_MS:.0f} ms target")
    return 0 if median < TARGET_FIRST_DATA_MS else 1


if __name__ == "__main__":
    sys.exit(main())
