"""The monitoring UI in real headless Chromium (Debian's `chromium`, driven by Playwright)
against the whole stack run by `mastertrade up` with the simulated market: the page loads with
data, the equity chart draws, the reset works for an admin key and not for others, an upstream
down shows an error state, and the page fits a phone. Screenshots at desktop and phone widths
are kept in out/ui-screenshots/."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from playwright.async_api import Browser, Page, ViewportSize, async_playwright

from mastertrade.catalog import SERVICES
from mastertrade.local_stack import StackUrls, build_env, plan_ports
from tests.infra import create_database, create_vhost, delete_vhost, drop_database, free_port
from tests.services.conftest import REDIS_TEST_URL
from tests.services.test_up import MASTERTRADE, OutputReader, free_offset

pytestmark = [pytest.mark.browser, pytest.mark.infra]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SHOTS = Path(__file__).resolve().parents[2] / "out" / "ui-screenshots"
ADMIN, TRADER = (f"{word}-{uuid.uuid4().hex}" for word in ("admin", "trader"))
DESKTOP: ViewportSize = {"width": 1366, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}


@dataclass(frozen=True)
class Stack:
    env: dict[str, str]
    ports: dict[str, int]

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.ports['monitoring_ui']}"

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['api_gateway']}"


async def seed(url: str) -> None:
    """What a day of trading leaves: a BTC position (valued at the simulated market by the
    executor, so equity moves), its order and fill, an active strategy with its backtest, an
    alert, and the breaker tripped."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "INSERT INTO positions (environment, symbol, quantity, average_price) "
            "VALUES ('paper', 'BTCUSDT', 0.05, 30000) ON CONFLICT DO NOTHING"
        )
        await connection.execute(
            "INSERT INTO orders (client_order_id, symbol, side, type, quantity, price, status, "
            "environment) VALUES ('mt-browser-1', 'BTCUSDT', 'buy', 'market', 0.05, 30000, "
            "'filled', 'paper')"
        )
        await connection.execute(
            "INSERT INTO fills (client_order_id, fill_id, price, quantity, fee, fee_asset) "
            "VALUES ('mt-browser-1', 'f-1', 30000, 0.05, 1.5, 'USDT')"
        )
        strategy = await connection.fetchval(
            "INSERT INTO strategies (name, status, parameters) VALUES ('browser-sma', 'active', "
            "$1) RETURNING id", json.dumps({"fast": 10, "slow": 50}),
        )  # fmt: skip
        await connection.execute(
            "INSERT INTO backtests (strategy_id, status, metrics, finished_at) "
            "VALUES ($1, 'done', $2, now())",
            strategy, json.dumps({"total_return": "0.12", "sharpe": "1.4", "win_rate": "0.55"}),
        )  # fmt: skip
        await connection.execute(
            "INSERT INTO alerts (severity, title, message, channel, status) VALUES "
            "('critical', 'Circuit breaker tripped', 'drawdown 16 % from the peak', 'all', 'sent')"
        )
        await trip_breaker(connection)
    finally:
        await connection.close()


async def trip_breaker(connection: asyncpg.Connection) -> None:
    await connection.execute(
        "INSERT INTO risk_state (environment, equity_peak, breaker_open, breaker_reason, "
        "breaker_tripped_at) VALUES ('paper', 20000, true, 'drawdown 16 % from the peak', now()) "
        "ON CONFLICT (environment) DO UPDATE SET breaker_open = true, equity_peak = 20000, "
        "breaker_reason = EXCLUDED.breaker_reason, breaker_tripped_at = now()"
    )


async def breaker_open(url: str) -> bool:
    connection = await asyncpg.connect(url)
    try:
        return bool(await connection.fetchval("SELECT breaker_open FROM risk_state"))
    finally:
        await connection.close()


def wait_healthy(url: str, process: subprocess.Popen[str], timeout: float) -> None:
    """Poll `url` until it answers 200 (a loaded shared machine may take a minute to import)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{url}: the service exited"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise AssertionError(f"{url} not healthy in {timeout} s")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The nine services as `mastertrade up` runs them (its plan of ports and environment), on a
    database and vhost of their own; each is waited for as long as a loaded machine needs."""
    database, vhost = create_database("mastertrade_browser"), create_vhost("mastertrade_browser")
    ports = plan_ports(SERVICES, free_offset())
    env = {
        **build_env(StackUrls(database, vhost, REDIS_TEST_URL), ports, "127.0.0.1"),
        "LOG_FORMAT": "console", "DEPENDENCY_TIMEOUT": "5", "MARKET_DATA_BACKFILL_DAYS": "1",
        "UI_POLL_SECONDS": "1", "GATEWAY_ANONYMOUS_RATE_LIMIT": "100000",
        "GATEWAY_API_KEYS": f"ops:admin:{ADMIN},trader:trade:{TRADER}",
        "RISK_ADMIN_API_KEY_SHA256": hashlib.sha256(ADMIN.encode()).hexdigest(),
    }  # fmt: skip
    logs = tmp_path_factory.mktemp("services")
    subprocess.run([MASTERTRADE, "migrate"], env=env, check=True, timeout=300,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    processes = {}
    try:
        for spec in SERVICES:
            with (logs / f"{spec.name}.log").open("w") as log:  # the child keeps its own copy
                processes[spec.name] = subprocess.Popen(
                    [MASTERTRADE, "serve", spec.name, "--port", str(ports[spec.name]),
                     "--host", "127.0.0.1"],
                    env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
                )  # fmt: skip
        for spec in SERVICES:
            url = f"http://127.0.0.1:{ports[spec.name]}{spec.health_path}"
            wait_healthy(url, processes[spec.name], timeout=240)
        asyncio.run(seed(database))
        yield Stack(env, ports)
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        drop_database(database)
        delete_vhost(vhost)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True
        )
        try:
            yield launched
        finally:
            await launched.close()


# WCAG's contrast ratio of every visible HTML text against the first opaque background behind it
CONTRAST = """() => {
  const rgb = (css) => (css.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] === 1)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const worst = [];
  for (const el of document.querySelectorAll("body *:not(svg):not(svg *)")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    const shown = el.getClientRects().length && getComputedStyle(el).visibility !== "hidden";
    if (!own || !shown) continue;
    const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(background(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) worst.push(`${el.tagName}#${el.id}.${el.className}: ${ratio.toFixed(2)}`);
  }
  return worst;
}"""


async def open_dashboard(browser: Browser, url: str, viewport: ViewportSize) -> Page:
    context = await browser.new_context(
        viewport=viewport, is_mobile=viewport == PHONE, has_touch=viewport == PHONE
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    await page.goto(url)
    await page.wait_for_selector("body[data-loaded=true]", timeout=30_000)
    page.errors = errors  # type: ignore[attr-defined]
    return page


async def test_the_dashboard_shows_live_data_and_draws_the_equity_chart(
    stack: Stack, browser: Browser
) -> None:
    page = await open_dashboard(browser, stack.ui, DESKTOP)
    # every service healthy, as the gateway and the UI see them
    await page.wait_for_function(
        "() => { const items = [...document.querySelectorAll('#service-list li')];"
        " return items.length >= 9 && items.every(li => li.dataset.status === 'healthy'); }",
        timeout=60_000,
    )
    # a few valuations by the executor: the line has as many vertices as the chart has points
    await page.wait_for_function(
        "() => Number(document.querySelector('#equity-chart').dataset.points) >= 3",
        timeout=60_000,
    )
    # the seeded rows arrive with the next snapshots (the data access API caches a page for 5 s)
    await page.wait_for_function(
        "() => ['#fills table', '#strategies table', '#alert-list', '#positions table'].every("
        "  (s, i) => document.querySelector(s).textContent.includes("
        "    ['mt-browser-1', 'browser-sma', 'Circuit breaker tripped', 'BTCUSDT'][i]))",
        timeout=60_000,
    )
    vertices = await page.eval_on_selector(
        "#equity-chart polyline", "line => line.getAttribute('points').trim().split(' ').length"
    )
    points = int(await page.get_attribute("#equity-chart", "data-points") or 0)
    assert vertices >= 3 and abs(vertices - points) <= 1  # (a new point may arrive between)
    assert await page.locator("#equity-chart path.area").count() == 1  # against the start
    assert (await page.text_content("#fig-equity") or "").replace(",", "")[0].isdigit()
    positions = await page.text_content("#positions table")
    assert positions is not None and "BTCUSDT" in positions
    assert "mt-browser-1" in (await page.text_content("#fills table") or "")
    strategies = await page.text_content("#strategies table") or ""
    assert "browser-sma" in strategies and "total return" in strategies
    assert "Circuit breaker tripped" in (await page.text_content("#alert-list") or "")
    assert await page.get_attribute("#breaker", "data-state") == "open"
    assert await page.get_attribute("#live", "data-state") == "live"
    assert await page.is_hidden("#problems")
    assert await page.evaluate(CONTRAST) == []  # every text at least 4.5:1 (WCAG AA)
    for section in ("services", "equity", "risk", "positions", "orders", "fills", "strategies",
                    "alerts"):  # fmt: skip
        assert await page.get_attribute(f"#{section}", "data-state") == "ok", section
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SHOTS / "desktop.png", full_page=True)
    assert page.errors == []  # type: ignore[attr-defined]


async def test_the_dashboard_fits_a_phone(stack: Stack, browser: Browser) -> None:
    page = await open_dashboard(browser, stack.ui, PHONE)
    await page.wait_for_function(
        "() => Number(document.querySelector('#equity-chart').dataset.points) >= 1"
    )
    overflow = await page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the phone"
    # the reset button is a comfortable touch target
    box = await page.locator("#reset-button").bounding_box()
    assert box is not None and box["height"] >= 44
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SHOTS / "phone.png", full_page=True)


async def test_the_reset_works_for_an_admin_key_and_not_for_others(
    stack: Stack, browser: Browser
) -> None:
    database = stack.env["DATABASE_URL"]
    connection = await asyncpg.connect(database)
    try:
        await trip_breaker(connection)
    finally:
        await connection.close()
    page = await open_dashboard(browser, stack.ui, DESKTOP)
    await page.wait_for_selector("#breaker[data-state=open]")
    await page.fill("#admin-key", TRADER)
    await page.click("#reset-button")
    await page.wait_for_selector("#reset-result[data-state=error]")
    refused = await page.text_content("#reset-result") or ""
    assert "Refused (403)" in refused and "needs admin" in refused
    assert await breaker_open(database)
    # with the keyboard only: focus the field by its label, type, press Enter
    await page.get_by_label("Admin API key").focus()
    await page.keyboard.press("Control+A")
    await page.keyboard.type(ADMIN)
    await page.keyboard.press("Enter")
    await page.wait_for_selector("#reset-result[data-state=ok]")
    assert await page.text_content("#reset-result") == "Circuit breaker reset."
    await page.wait_for_selector("#breaker[data-state=closed]")
    assert not await breaker_open(database)
    assert await page.input_value("#admin-key") == ""  # the key is not kept in the page


async def test_an_upstream_down_shows_an_error_state(stack: Stack, browser: Browser) -> None:
    # a second dashboard whose data access API is down (nothing listens at its URL)
    port = free_port()
    env = {**stack.env, "API_GATEWAY_URL": stack.gateway,
           "DATA_ACCESS_API_URL": f"http://127.0.0.1:{free_port()}"}  # fmt: skip
    process = subprocess.Popen(
        [MASTERTRADE, "serve", "monitoring-ui", "--port", str(port)], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    output = OutputReader(process)
    try:
        output.wait_for("Application startup complete", timeout=60)
        page = await open_dashboard(browser, f"http://127.0.0.1:{port}", PHONE)
        assert await page.get_attribute("#orders", "data-state") == "error"
        error = await page.text_content("#orders .error") or ""
        assert "data_access_api refused the connection or is down" in error
        assert await page.is_visible("#problems")
        assert await page.get_attribute("#risk", "data-state") == "ok"  # via the gateway
        assert await page.evaluate(CONTRAST) == []  # the error states are readable too
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=SHOTS / "phone-upstream-down.png", full_page=True)
        # the dashboard's own server gone: the page says the live connection is lost
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        await page.wait_for_selector("#live[data-state=error]", timeout=30_000)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        output.rest(timeout=10)
