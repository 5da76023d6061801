"""Running an app under uvicorn with a clean exit on SIGTERM and Ctrl-C.

uvicorn, on a signal, finishes in-flight requests, runs the lifespan shutdown (connections are
closed there), then re-raises the signal so the process dies *by* it. Kubernetes and `up` want a
plain exit code 0 after a graceful stop, so `GracefulServer` keeps the graceful part and drops
the re-raise.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

import uvicorn
from fastapi import FastAPI

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class GracefulServer(uvicorn.Server):
    """uvicorn's server; a SIGTERM or SIGINT ends `run()` normally instead of re-raising."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._on_signal) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        del frame
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


def build_server(app: FastAPI, host: str, port: int, graceful_timeout: int = 25) -> GracefulServer:
    """A server for `app`; in-flight requests get `graceful_timeout` seconds to finish."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=graceful_timeout,
        server_header=False,
        # the peer is the caller: X-Forwarded-For is anyone's to write, and uvicorn trusts it
        # from loopback by default (every local process, a `kubectl port-forward`), which would
        # give a caller a fresh rate-limit bucket per header value
        proxy_headers=False,
    )
    return GracefulServer(config)


def serve(app: FastAPI, host: str, port: int) -> bool:
    """Run until a signal; True when the app started and stopped cleanly."""
    server = build_server(app, host, port)
    server.run()
    return server.started
