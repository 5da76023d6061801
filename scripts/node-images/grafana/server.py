"""Grafana substitute for the MasterTrade test node (Debian has no Grafana package).

Listens on :3000 like Grafana and answers:
- GET /api/health: 200 {"database": "ok", ...} when the data path is writable and every
  provisioning file (data sources, dashboard providers, dashboard JSON) parses; 503 saying what
  is wrong otherwise, so the chart's probes check what the chart mounted.
- GET /api/datasources and /api/search (HTTP basic auth with GF_SECURITY_ADMIN_USER and
  GF_SECURITY_ADMIN_PASSWORD): the provisioned data sources and dashboard titles;
- GET /metrics: Prometheus text, as Grafana serves it (the chart's Prometheus scrapes it):
  build info, uptime, and how many data sources and dashboards are provisioned.
Stops on SIGTERM.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

PROVISIONING = Path(os.environ.get("GF_PATHS_PROVISIONING", "/etc/grafana/provisioning"))
DATA = Path(os.environ.get("GF_PATHS_DATA", "/var/lib/grafana"))
VERSION = "12.0.2-standin"
STARTED = time.time()


def provisioned() -> tuple[list[Any], list[str]]:
    """The data sources and dashboard titles provisioned; raises if a file does not parse."""
    sources: list[Any] = []
    for path in sorted((PROVISIONING / "datasources").glob("*.y*ml")):
        sources += (yaml.safe_load(path.read_text()) or {}).get("datasources", [])
    titles = []
    for path in sorted((PROVISIONING / "dashboards").rglob("*.json")):
        titles.append(str(json.loads(path.read_text()).get("title", path.stem)))
    for path in sorted((PROVISIONING / "dashboards").glob("*.y*ml")):
        yaml.safe_load(path.read_text())
    return sources, titles


def health() -> tuple[int, dict[str, Any]]:
    try:
        probe = DATA / ".health"
        probe.write_text("ok")
        probe.unlink()
        provisioned()
    except (OSError, ValueError, yaml.YAMLError) as error:
        return 503, {"database": "failing", "message": str(error), "version": VERSION}
    return 200, {"database": "ok", "version": VERSION, "commit": "standin"}


def metrics() -> str:
    """Prometheus text exposition of what this substitute knows."""
    try:
        sources, titles = provisioned()
    except (OSError, ValueError, yaml.YAMLError):
        sources, titles = [], []
    return (
        "# HELP grafana_build_info A metric with a constant '1' value labeled by version.\n"
        "# TYPE grafana_build_info gauge\n"
        f'grafana_build_info{{version="{VERSION}",edition="standin"}} 1\n'
        "# HELP grafana_standin_uptime_seconds Seconds since the substitute started.\n"
        "# TYPE grafana_standin_uptime_seconds gauge\n"
        f"grafana_standin_uptime_seconds {time.time() - STARTED:.3f}\n"
        "# HELP grafana_stat_totals_datasource Provisioned data sources.\n"
        "# TYPE grafana_stat_totals_datasource gauge\n"
        f"grafana_stat_totals_datasource {len(sources)}\n"
        "# HELP grafana_stat_totals_dashboard Provisioned dashboards.\n"
        "# TYPE grafana_stat_totals_dashboard gauge\n"
        f"grafana_stat_totals_dashboard {len(titles)}\n"
    )


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/api/health":
            self.reply(*health())
        elif self.path == "/metrics":
            self.reply_text(200, metrics())
        elif self.path in ("/api/datasources", "/api/search"):
            if not self.authorised():
                self.reply(401, {"message": "Unauthorized"})
                return
            sources, titles = provisioned()
            body: Any = (
                sources
                if self.path == "/api/datasources"
                else [{"title": t, "type": "dash-db"} for t in titles]
            )
            self.reply(200, body)
        else:
            self.reply(404, {"message": "Not found"})

    def authorised(self) -> bool:
        user = os.environ.get("GF_SECURITY_ADMIN_USER", "admin")
        password = os.environ.get("GF_SECURITY_ADMIN_PASSWORD", "admin")
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return self.headers.get("Authorization") == expected

    def reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def reply_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write("grafana-standin: " + format % args + "\n")


def main() -> None:
    server = ThreadingHTTPServer(("0.0.0.0", 3000), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"grafana-standin {VERSION} listening on :3000, provisioning {PROVISIONING}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
