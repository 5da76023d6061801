"""Cluster DNS for the test node: `<service>.<namespace>.svc.cluster.local` from the API server.

The shared kit's node has no CoreDNS (neither vendored nor in Debian), so this small resolver
stands in: the tier starts it on the node's address and the node with `CLUSTER_DNS=<address>`,
so Pods resolve Service names through the `<ns>.svc.cluster.local` search path the kubelet
writes into their resolv.conf.

Answers over UDP (the answers are one or a few A records; no TCP):
- `<service>.<ns>.svc.cluster.local` A: the Service's ClusterIP, or for a headless Service the
  ready addresses of its Endpoints;
- `<hostname>.<service>.<ns>.svc.cluster.local` A: the ready endpoint with that hostname (a
  StatefulSet's Pods behind its headless Service);
- other types for a known name: no records (NOERROR), so resolvers go on to the A record;
- any other name under cluster.local: NXDOMAIN;
- every other name is forwarded to the machine's own resolver (first nameserver of
  /etc/resolv.conf), or refused with `--no-forward`.
Services and Endpoints are read from the API with the admin kubeconfig's client certificate,
again at most once a second when a cluster name is asked.

    python -m tests.node.dns --kubeconfig DIR/kubeconfig --listen 192.0.2.2:53
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import socket
import socketserver
import ssl
import struct
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DOMAIN = "cluster.local"
TTL = 5
TYPE_A = 1
CLASS_IN = 1
NOERROR, SERVFAIL, NXDOMAIN, REFUSED = 0, 2, 3, 5

log = logging.getLogger("cluster-dns")


@dataclass
class Query:
    """The parts of a DNS query the resolver needs."""

    ident: int
    flags: int
    name: str
    qtype: int
    qclass: int
    question: bytes  # the question section as received, echoed in the answer


def parse_query(packet: bytes) -> Query:
    """The first question of a query; raises ValueError on anything malformed."""
    if len(packet) < 12:
        raise ValueError("shorter than a DNS header")
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount < 1:
        raise ValueError("no question")
    labels, at = [], 12
    while True:
        if at >= len(packet):
            raise ValueError("name runs past the packet")
        length = packet[at]
        if length & 0xC0:
            raise ValueError("compressed name in a question")
        at += 1
        if length == 0:
            break
        labels.append(packet[at : at + length].decode("ascii", "replace"))
        at += length
    if at + 4 > len(packet):
        raise ValueError("question without type and class")
    qtype, qclass = struct.unpack("!HH", packet[at : at + 4])
    return Query(ident, flags, ".".join(labels).lower(), qtype, qclass, packet[12 : at + 4])


def answer(query: Query, rcode: int, addresses: list[str]) -> bytes:
    """A response to `query`: authoritative, recursion available, with A records pointing at the
    question's name (compression pointer to offset 12)."""
    flags = 0x8000 | (query.flags & 0x7900) | 0x0400 | 0x0080 | rcode
    header = struct.pack("!HHHHHH", query.ident, flags, 1, len(addresses), 0, 0)
    records = b"".join(
        struct.pack("!HHHIH", 0xC00C, TYPE_A, CLASS_IN, TTL, 4) + socket.inet_aton(address)
        for address in addresses
    )
    return header + query.question + records


@dataclass
class Directory:
    """Service names to addresses, as the API server last said."""

    services: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    hosts: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)

    def lookup(self, name: str) -> list[str] | None:
        """The addresses of a cluster name, or None when no such name exists."""
        parts = name.removesuffix("." + DOMAIN).split(".")
        if len(parts) == 3 and parts[2] == "svc":
            return self.services.get((parts[1], parts[0]))
        if len(parts) == 4 and parts[3] == "svc":
            return self.hosts.get((parts[2], parts[1], parts[0]))
        return None


class ApiClient:
    """GETs from the API server with a kubeconfig's cluster CA and client certificate."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        self.server = cluster["server"].rstrip("/")
        self._files = tempfile.TemporaryDirectory(prefix="cluster-dns-")
        folder = Path(self._files.name)

        def material(key: str, name: str, source: dict[str, Any]) -> str:
            if f"{key}-data" in source:
                path = folder / name
                path.write_bytes(base64.b64decode(source[f"{key}-data"]))
                return str(path)
            return str((kubeconfig.parent / source[key]).resolve())

        self.context = ssl.create_default_context(
            cafile=material("certificate-authority", "ca.crt", cluster)
        )
        self.context.load_cert_chain(
            material("client-certificate", "client.crt", user),
            material("client-key", "client.key", user),
        )

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(
            self.server + path, context=self.context, timeout=5
        ) as response:
            return json.load(response)


def read_directory(api: ApiClient) -> Directory:
    directory = Directory()
    endpoints: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for item in api.get("/api/v1/endpoints")["items"]:
        key = (item["metadata"]["namespace"], item["metadata"]["name"])
        for subset in item.get("subsets") or []:
            endpoints.setdefault(key, []).extend(subset.get("addresses") or [])
    for service in api.get("/api/v1/services")["items"]:
        key = (service["metadata"]["namespace"], service["metadata"]["name"])
        cluster_ip = service["spec"].get("clusterIP")
        ready = endpoints.get(key, [])
        if cluster_ip and cluster_ip != "None":
            directory.services[key] = [cluster_ip]
        else:
            directory.services[key] = sorted({a["ip"] for a in ready})
        for address in ready:
            if address.get("hostname"):
                directory.hosts[(*key, address["hostname"])] = [address["ip"]]
    return directory


class Resolver:
    """Answers one query at a time from a directory refreshed on demand."""

    def __init__(self, api: ApiClient, upstream: str | None, refresh_every: float = 1.0) -> None:
        self.api = api
        self.upstream = upstream
        self.refresh_every = refresh_every
        self._lock = threading.Lock()
        self._directory = Directory()
        self._read_at = 0.0

    def directory(self) -> Directory:
        with self._lock:
            if time.monotonic() - self._read_at >= self.refresh_every:
                try:
                    self._directory = read_directory(self.api)
                    self._read_at = time.monotonic()
                except OSError as error:
                    log.warning("could not read Services from the API server: %s", error)
            return self._directory

    def resolve(self, packet: bytes) -> bytes | None:
        try:
            query = parse_query(packet)
        except ValueError as error:
            log.info("ignored a malformed query: %s", error)
            return None
        if query.name == DOMAIN or query.name.endswith("." + DOMAIN):
            addresses = self.directory().lookup(query.name)
            if addresses is None:
                return answer(query, NXDOMAIN, [])
            wanted = query.qtype == TYPE_A and query.qclass == CLASS_IN
            return answer(query, NOERROR, addresses if wanted else [])
        if self.upstream is None:
            return answer(query, REFUSED, [])
        return self.forward(query, packet)

    def forward(self, query: Query, packet: bytes) -> bytes:
        assert self.upstream is not None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as upstream:
            upstream.settimeout(3)
            try:
                upstream.sendto(packet, (self.upstream, 53))
                reply, _ = upstream.recvfrom(65535)
                return reply
            except OSError as error:
                log.info("upstream %s did not answer %s: %s", self.upstream, query.name, error)
                return answer(query, SERVFAIL, [])


def host_nameserver() -> str | None:
    for line in Path("/etc/resolv.conf").read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            return words[1]
    return None


def serve(resolver: Resolver, host: str, port: int) -> socketserver.ThreadingUDPServer:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            packet, sock = self.request
            reply = resolver.resolve(packet)
            if reply is not None:
                sock.sendto(reply, self.client_address)

    socketserver.ThreadingUDPServer.allow_reuse_address = True
    server = socketserver.ThreadingUDPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="Cluster DNS for the test node")
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--listen", required=True, help="IP:PORT, e.g. 192.0.2.2:53")
    parser.add_argument("--no-forward", action="store_true", help="refuse non-cluster names")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s cluster-dns: %(message)s")
    host, _, port = args.listen.rpartition(":")
    upstream = None if args.no_forward else host_nameserver()
    server = serve(Resolver(ApiClient(args.kubeconfig), upstream), host, int(port))
    log.info(
        "answering *.svc.%s on %s:%s from %s; other names %s",
        DOMAIN, host, port, args.kubeconfig,
        f"forwarded to {upstream}" if upstream else "refused",
    )  # fmt: skip
    server.serve_forever()


if __name__ == "__main__":
    main()
