"""Benchmark: latency the API gateway adds, beside calling the service directly, same run.

risk_manager (`mastertrade serve`, its `/api/v1/limits` touches no database) is called
directly and through `mastertrade serve api_gateway` (`/api/risk-manager/api/v1/limits`),
anonymously (the per-address rate limit in Redis) and with an API key (digest lookup, per-key
rate limit). Requests alternate between the cases one at a time on kept-alive connections, so
that drift of a shared machine touches every case alike. Added latency is the gateway's
percentile minus the direct one. Target: p99 added under 2 ms. The limits are raised so that
no request is refused; the rate limiter then reserves 16 requests per Redis round trip, as it
does at the default per-key limit of 600 (at the default anonymous limit of 120: 6).

Wall-clock latency on a loaded shared machine mostly measures the queue for its cores, so the
run also reports CPU time per request (user + system, from /proc) of the gateway process, beside
that of the service it calls: the work the gateway itself adds, which the load barely changes.

    .venv/bin/python bench/gateway.py [--samples 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.httpbench import (
    Client,
    cpu_seconds,
    ms,
    percentile,
    scratch_infrastructure,
    serving_process,
    table,
)

TOKEN = "bench-token-0123456789abcdefghij"
TARGET_P99_ADDED_MS = 2.0


def sample(
    clients: dict[str, tuple[Client, str, dict[str, str]]], samples: int
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(samples):
        for name, (client, path, headers) in clients.items():
            status, _, seconds = client.get(path, headers)
            if status != 200:
                raise RuntimeError(f"{name}: HTTP {status}")
            times[name].append(seconds)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    args = parser.parse_args()
    with scratch_infrastructure() as env, serving_process("risk_manager", env) as (risk, service):
        gateway_env = {**env, "RISK_MANAGER_URL": f"http://127.0.0.1:{risk}",
                       "GATEWAY_API_KEYS": f"bench:read:{TOKEN}",
                       "GATEWAY_RATE_LIMIT": "1000000",
                       "GATEWAY_ANONYMOUS_RATE_LIMIT": "1000000"}  # fmt: skip
        with serving_process("api_gateway", gateway_env) as (gateway, proxy):
            via = "/api/risk-manager/api/v1/limits"
            clients = {
                "direct (reference)": (Client(risk), "/api/v1/limits", {}),
                "gateway, anonymous": (Client(gateway), via, {}),
                "gateway, API key": (Client(gateway), via, {"Authorization": f"Bearer {TOKEN}"}),
            }
            sample(clients, 200)  # warm-up
            load_before = os.getloadavg()[0]
            before = cpu_seconds(service), cpu_seconds(proxy)
            times = sample(clients, args.samples)
            after = cpu_seconds(service), cpu_seconds(proxy)
            load_after = os.getloadavg()[0]
    direct = times["direct (reference)"]
    rows = [["case", "p50 ms", "p99 ms", "added p50 ms", "added p99 ms"]]
    for name, found in times.items():
        rows.append([
            name, ms(percentile(found, 0.5)), ms(percentile(found, 0.99)),
            ms(percentile(found, 0.5) - percentile(direct, 0.5)),
            ms(percentile(found, 0.99) - percentile(direct, 0.99)),
        ])  # fmt: skip
    print(
        f"GET {args.samples} times each, one at a time, kept-alive connections "
        f"(load average {load_before:.2f} before, {load_after:.2f} after):"
    )
    print(table(rows))
    print(f"target: added p99 under {TARGET_P99_ADDED_MS} ms")
    served = args.samples * len(clients)  # the service answers every case
    proxied = args.samples * (len(clients) - 1)
    print(f"CPU per request: risk_manager {ms((after[0] - before[0]) / served)} ms (reference), "
          f"gateway {ms((after[1] - before[1]) / proxied)} ms")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
