"""The operator as a local process (`mastertrade-operator run`), logged in with a kubeconfig
of its own ServiceAccount, so every request it makes meets the real RBAC."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.k8s.controlplane import WATCHED_NAMESPACE, python_bin


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class OperatorProcess:
    """One `mastertrade-operator run --namespace mastertrade --standalone` process."""

    def __init__(self, kubeconfig: Path, log: Path, phase_retry: float = 1.0) -> None:
        self.log_path = log
        self.health = f"http://127.0.0.1:{free_port()}/healthz"
        command = [
            str(python_bin() / "mastertrade-operator"),
            "run",
            "--namespace",
            WATCHED_NAMESPACE,
            "--standalone",
            "--liveness",
            self.health,
            "--metrics-port",
            "0",
            "--phase-retry",
            str(phase_retry),
        ]
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
            env.pop(name, None)
        self.started = time.monotonic()
        with log.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)

    def wait_healthy(self, timeout: float = 60.0) -> float:
        """Seconds from start until kopf answers its liveness probe."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the operator exited:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.health, timeout=1) as answer:
                    if answer.status == 200:
                        return time.monotonic() - self.started
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"the operator is not healthy after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_kib(self) -> int:
        """Resident memory now, from /proc."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
