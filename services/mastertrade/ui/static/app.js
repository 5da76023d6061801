// The dashboard: one EventSource on /api/events brings a snapshot on connect and then every
// UI_POLL_SECONDS; each part of a snapshot is {ok, data, error} and is drawn, or shown failed
// with the upstream's sentence, on its own. The reset form posts the pasted key once.

import { drawEquity } from "./chart.js";
import * as fmt from "./format.js";

const $ = (selector) => document.querySelector(selector);
let latest = null;

function element(name, text, attributes = {}) {
  const node = document.createElement(name);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

// Marks a section as showing data or failed; returns the data when there is some.
function settle(id, part) {
  const section = document.getElementById(id);
  const error = section.querySelector(".error");
  if (part && part.ok) {
    section.dataset.state = part.error ? "partial" : "ok";
    error.hidden = !part.error;
    error.textContent = part.error ?? "";
    return part.data;
  }
  section.dataset.state = "error";
  error.hidden = false;
  error.textContent = part?.error ?? "no data";
  return null;
}

// columns: [label, value(row) -> text, numeric?]
function table(id, part, columns, empty) {
  const rows = settle(id, part);
  const target = document.querySelector(`#${id} table`);
  target.replaceChildren();
  if (rows === null) return;
  const head = target.createTHead().insertRow();
  for (const [label, , numeric] of columns) {
    head.append(element("th", label, { scope: "col", class: numeric ? "num" : "" }));
  }
  const body = target.createTBody();
  if (rows.length === 0) {
    const cell = body.insertRow().insertCell();
    cell.colSpan = columns.length;
    cell.className = "empty";
    cell.textContent = empty;
    return;
  }
  for (const row of rows) {
    const line = body.insertRow();
    for (const [, value, numeric] of columns) {
      const cell = line.insertCell();
      cell.textContent = value(row);
      if (numeric) cell.className = "num";
    }
  }
}

function renderServices(part) {
  const services = settle("services", part.ok || !part.data ? part : { ...part, ok: true });
  const list = $("#service-list");
  list.replaceChildren();
  if (!services) return;
  for (const [name, info] of Object.entries(services).sort()) {
    const item = element("li", null, { "data-status": info.status });
    item.append(element("span", name.replaceAll("_", " "), { class: "name" }));
    item.append(element("span", info.status, { class: "pill" }));
    list.append(item);
  }
}

function renderEquity(snapshot) {
  const series = settle("equity", snapshot.equity);
  const account = snapshot.account.ok ? snapshot.account.data : null;
  const risk = snapshot.risk.ok ? snapshot.risk.data : null;
  const points = series?.points ?? [];
  const last = points.at(-1);
  $("#fig-equity").textContent = last ? fmt.amount(last.equity, 2) : "–";
  const pnl = $("#fig-pnl");
  pnl.textContent = last?.pnl != null ? fmt.signed(last.pnl) : "–";
  pnl.dataset.sign = last?.pnl == null ? "" : String(last.pnl).startsWith("-") ? "loss" : "gain";
  $("#fig-peak").textContent = fmt.amount(risk?.equity_peak, 2);
  $("#fig-drawdown").textContent = fmt.fraction(risk?.drawdown);
  const environment = $("#environment");
  environment.hidden = !account;
  environment.textContent = account ? `${account.environment} trading` : "";
  environment.dataset.environment = account?.environment ?? "";
  drawEquity($("#equity-chart"), series);
}

function renderRisk(part) {
  const risk = settle("risk", part);
  const breaker = $("#breaker");
  if (!risk) {
    breaker.dataset.state = "unknown";
    breaker.textContent = "State unknown";
    return;
  }
  breaker.dataset.state = risk.breaker_open ? "open" : "closed";
  breaker.textContent = risk.breaker_open
    ? "OPEN: new exposure is refused, sells only"
    : "Closed: trading normally";
  $("#breaker-reason").textContent = risk.breaker_reason ?? "–";
  $("#breaker-at").textContent = fmt.time(risk.breaker_tripped_at);
  const limit = risk.limits?.max_portfolio_drawdown_pct;
  $("#breaker-limit").textContent = limit == null ? "–"
    : `${fmt.fraction(limit)} (now ${fmt.fraction(risk.drawdown)})`;
  $("#kill-switch").textContent = risk.kill_switch ? "ON: every order is refused" : "off";
}

function metricsOf(backtest) {
  if (!backtest) return "no finished backtest";
  const metrics = backtest.metrics ?? {};
  const wanted = ["total_return", "sharpe", "sharpe_ratio", "max_drawdown", "win_rate", "trades"];
  const keys = wanted.filter((key) => key in metrics);
  const shown = (keys.length ? keys : Object.keys(metrics)).slice(0, 5);
  return shown.map((key) => `${key.replaceAll("_", " ")} ${fmt.amount(metrics[key], 4)}`).join(" · ") || "no metrics";
}

function periodOf(backtest) {
  if (!backtest?.period_from && !backtest?.period_to) return "–";
  return `${fmt.time(backtest.period_from)} to ${fmt.time(backtest.period_to)}`;
}

function renderAlerts(part) {
  const alerts = settle("alerts", part);
  const list = $("#alert-list");
  list.replaceChildren();
  if (!alerts) return;
  if (alerts.length === 0) list.append(element("li", "No alerts.", { class: "empty" }));
  for (const alert of alerts) {
    const item = element("li", null, { "data-severity": alert.severity });
    item.append(element("span", alert.severity, { class: "pill" }));
    item.append(element("strong", alert.title));
    item.append(element("span", alert.message, { class: "message" }));
    item.append(element("time", fmt.time(alert.created_at), { datetime: alert.created_at ?? "" }));
    list.append(item);
  }
}

function renderProblems(snapshot) {
  const errors = new Set();
  for (const part of Object.values(snapshot)) {
    if (part && typeof part === "object" && part.error) errors.add(part.error);
  }
  for (const [name, info] of Object.entries(snapshot.services?.data ?? {})) {
    if (info.status !== "healthy") errors.add(`${name.replaceAll("_", " ")} is ${info.status}`);
  }
  const box = $("#problems");
  box.hidden = errors.size === 0;
  $("#problem-list").replaceChildren(...[...errors].map((text) => element("li", text)));
}

function render(snapshot) {
  const first = latest === null;
  latest = snapshot;
  renderServices(snapshot.services);
  renderEquity(snapshot);
  renderRisk(snapshot.risk);
  table("positions", snapshot.positions, [
    ["Symbol", (r) => r.symbol],
    ["Quantity", (r) => fmt.amount(r.quantity), true],
    ["Average price", (r) => fmt.amount(r.average_price), true],
    ["Mark", (r) => fmt.amount(r.mark), true],
    ["Value", (r) => fmt.amount(r.value, 2), true],
    ["Unrealised P&L", (r) => fmt.signed(r.unrealized_pnl), true],
  ], "No open positions.");
  table("orders", snapshot.orders, [
    ["Created", (r) => fmt.time(r.created_at)],
    ["Symbol", (r) => r.symbol],
    ["Side", (r) => r.side],
    ["Type", (r) => r.type],
    ["Quantity", (r) => fmt.amount(r.quantity), true],
    ["Price", (r) => fmt.amount(r.price), true],
    ["Status", (r) => r.status],
  ], "No orders yet.");
  table("fills", snapshot.fills, [
    ["Filled", (r) => fmt.time(r.filled_at)],
    ["Order", (r) => r.client_order_id],
    ["Price", (r) => fmt.amount(r.price), true],
    ["Quantity", (r) => fmt.amount(r.quantity), true],
    ["Fee", (r) => `${fmt.amount(r.fee)} ${r.fee_asset ?? ""}`, true],
  ], "No fills yet.");
  table("strategies", snapshot.strategies, [
    ["Strategy", (r) => r.name],
    ["Status", (r) => r.status],
    ["Backtest", (r) => metricsOf(r.backtest)],
    ["Period", (r) => periodOf(r.backtest)],
  ], "No active strategy.");
  renderAlerts(snapshot.alerts);
  renderProblems(snapshot);
  const updated = $("#updated");
  updated.textContent = fmt.clock(snapshot.generated_at);
  updated.setAttribute("datetime", snapshot.generated_at);
  document.body.dataset.loaded = "true";
  // time to first data, for real-user timing and bench/ui.py
  if (first) performance.mark("mastertrade:first-data");
}

function setLive(state, text) {
  const live = $("#live");
  if (live.dataset.state === state) return; // announce changes only, not every update
  live.dataset.state = state;
  live.textContent = text;
}

function connect() {
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => setLive("live", "Live: updates arrive as they happen"));
  source.addEventListener("snapshot", (event) => {
    setLive("live", "Live: updates arrive as they happen");
    render(JSON.parse(event.data));
  });
  source.addEventListener("error", () => {
    setLive("error", "Connection to the dashboard server lost; reconnecting…");
  });
}

async function reset(event) {
  event.preventDefault();
  const input = $("#admin-key");
  const result = $("#reset-result");
  const button = $("#reset-button");
  const key = input.value.trim();
  if (!key) {
    result.dataset.state = "error";
    result.textContent = "Paste an admin API key first.";
    input.focus();
    return;
  }
  button.disabled = true;
  result.dataset.state = "pending";
  result.textContent = "Resetting…";
  try {
    const answer = await fetch("/api/circuit-breaker/reset", {
      method: "POST", headers: { Authorization: `Bearer ${key}` },
    });
    const body = await answer.json().catch(() => ({}));
    if (answer.ok) {
      result.dataset.state = "ok";
      result.textContent = "Circuit breaker reset.";
      input.value = "";
      if (body.state) renderRisk({ ok: true, data: { ...(latest?.risk?.data ?? {}), ...body.state } });
    } else {
      result.dataset.state = "error";
      result.textContent = `Refused (${answer.status}): ${body.detail ?? answer.statusText}`;
    }
  } catch {
    result.dataset.state = "error";
    result.textContent = "The dashboard server could not be reached; try again.";
  } finally {
    button.disabled = false;
  }
}

$("#reset-form").addEventListener("submit", reset);
new ResizeObserver(() => latest && drawEquity($("#equity-chart"), latest.equity?.data)).observe($("#equity-chart"));
connect();
