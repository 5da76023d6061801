"""A real Kubernetes control plane for the `k8s` test tier and the real-API benchmark.

`ControlPlane.start` runs the shared kit (`<repo>/../shared/k8s/control-plane up DIR`, then its
`kubelet` stand-in) in a temporary folder, or, when `KUBEBUILDER_ASSETS` names a folder with
`kube-apiserver` and `etcd` (the envtest convention), those two binaries on loopback with the
same audit log (no controllers then: no garbage collection, no workload status).
`stop` is the kit's `down DIR` (or stops the two processes).

Helpers: `kubectl` as the admin; `audit_mark`/`writes_since` count the writes a user made
between two moments from DIR/logs/audit.log (dry runs write nothing and are not counted); and
`operator_identity` creates the operator's ServiceAccount, its namespaced RBAC from manifests/
and kubeconfigs holding its token (`kubectl create token`): with embedded data, with paths
relative to the kubeconfig's folder, or with an exec credential plugin.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
KUBECTL = REPO / ".tools" / "bin" / "kubectl"
MANIFESTS = REPO / "manifests"
OPERATOR_NAMESPACE = "mastertrade-system"
WATCHED_NAMESPACE = "mastertrade"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:mastertrade-operator"
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")


def find_kit() -> Path | None:
    """The shared kit's `control-plane` script, beside the repository or a folder above it."""
    for folder in (REPO, *REPO.parents):
        script = folder.parent / "shared" / "k8s" / "control-plane"
        if script.is_file():
            return script
    return None


def run(args: Sequence[str | Path], *, env: dict[str, str] | None = None, **kw: Any) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
        timeout=kw.pop("timeout", 120),
        **kw,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{done.stdout}{done.stderr}")
    return str(done.stdout)


@dataclass
class ControlPlane:
    """A running control plane: its folder, admin kubeconfig and audit log."""

    folder: Path
    kit: Path | None

    @property
    def kubeconfig(self) -> Path:
        return self.folder / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.folder / "logs" / "audit.log"

    @property
    def server(self) -> str:
        config = yaml.safe_load(self.kubeconfig.read_text())
        return str(config["clusters"][0]["cluster"]["server"])

    @classmethod
    def start(cls, folder: Path) -> ControlPlane:
        assets = os.environ.get("KUBEBUILDER_ASSETS")
        if assets:
            plane = cls(folder, None)
            start_envtest(folder, Path(assets))
            return plane
        kit = find_kit()
        if kit is None:
            raise RuntimeError(
                "no ../shared/k8s/control-plane beside the repository and no "
                "KUBEBUILDER_ASSETS: the k8s tier needs one of them"
            )
        env = {"KUBECTL": str(KUBECTL)}
        run([kit, "up", folder], env=env, timeout=300)
        run([kit, "kubelet", folder], env=env)
        return cls(folder, kit)

    def stop(self) -> None:
        if self.kit is not None:
            run([self.kit, "down", self.folder], env={"KUBECTL": str(KUBECTL)}, timeout=300)
        else:
            stop_envtest(self.folder)

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        return run([KUBECTL, "--kubeconfig", self.kubeconfig, *args], input=stdin, timeout=timeout)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def audit_mark(self) -> int:
        """A moment: the audit log's size now."""
        return self.audit_log.stat().st_size if self.audit_log.exists() else 0

    def writes_since(
        self, mark: int, user: str = OPERATOR_USER, resource: str | None = None
    ) -> list[dict[str, Any]]:
        """The writes `user` made (to `resource`, e.g. "deployments") since `mark`."""
        with self.audit_log.open("rb") as log:
            log.seek(mark)
            lines = log.read().decode().splitlines()
        events = [json.loads(line) for line in lines if line.strip()]
        return [
            event
            for event in events
            if event.get("verb") in WRITE_VERBS
            and event.get("user", {}).get("username") == user
            and "dryRun=All" not in event.get("requestURI", "")
            and (resource is None or event.get("objectRef", {}).get("resource") == resource)
        ]


def openssl(*args: str | Path, cwd: Path) -> None:
    run(["openssl", *args], cwd=cwd)


def make_pki(pki: Path) -> None:
    """A CA, the apiserver's serving certificate, an admin client (system:masters), SA keys."""
    pki.mkdir(parents=True, exist_ok=True)
    (pki / "san.cnf").write_text(
        "[req]\ndistinguished_name=dn\n[dn]\n[ext]\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"
    )
    (pki / "client.cnf").write_text("[ext]\nextendedKeyUsage=clientAuth\n")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.crt", "-days", "2", "-subj", "/CN=envtest-ca", cwd=pki)  # fmt: skip
    for name, subject, config in (
        ("apiserver", "/CN=kube-apiserver", "san.cnf"),
        ("admin", "/O=system:masters/CN=admin", "client.cnf"),
    ):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                f"{name}.csr", "-subj", subject, "-config", "san.cnf", cwd=pki)  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", config,
                "-extensions", "ext", cwd=pki)  # fmt: skip
    openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def spawn(folder: Path, name: str, command: list[str | Path]) -> None:
    (folder / "logs").mkdir(exist_ok=True)
    (folder / "run").mkdir(exist_ok=True)
    with (folder / "logs" / f"{name}.log").open("ab") as log:
        process = subprocess.Popen([str(c) for c in command], stdout=log, stderr=log)
    (folder / "run" / f"{name}.pid").write_text(str(process.pid))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_envtest(folder: Path, assets: Path) -> None:
    """etcd + kube-apiserver from envtest's binaries, with certificates and the audit log as the
    kit makes them. No controllers run: no garbage collection, no workload status."""
    pki, etcd_port, peer, api = folder / "pki", free_port(), free_port(), free_port()
    make_pki(pki)
    spawn(folder, "etcd", [assets / "etcd", "--data-dir", folder / "etcd",
          "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
          "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
          "--listen-peer-urls", f"http://127.0.0.1:{peer}",
          "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
          "--initial-cluster", f"default=http://127.0.0.1:{peer}"])  # fmt: skip
    (folder / "audit-policy.yaml").write_text(AUDIT_POLICY)
    spawn(folder, "apiserver", [assets / "kube-apiserver", "--bind-address=127.0.0.1",
          f"--secure-port={api}", f"--etcd-servers=http://127.0.0.1:{etcd_port}",
          "--service-cluster-ip-range=10.0.0.0/24", "--authorization-mode=RBAC",
          f"--client-ca-file={pki}/ca.crt", f"--tls-cert-file={pki}/apiserver.crt",
          f"--tls-private-key-file={pki}/apiserver.key",
          f"--service-account-key-file={pki}/sa.pub",
          f"--service-account-signing-key-file={pki}/sa.key",
          "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
          f"--audit-policy-file={folder}/audit-policy.yaml",
          f"--audit-log-path={folder}/logs/audit.log", f"--cert-dir={folder}/run"])  # fmt: skip
    kubectl: list[str | Path] = ["--kubeconfig", folder / "kubeconfig"]
    run([KUBECTL, *kubectl, "config", "set-cluster", "test", f"--server=https://127.0.0.1:{api}",
         f"--certificate-authority={pki}/ca.crt", "--embed-certs"])  # fmt: skip
    run([KUBECTL, *kubectl, "config", "set-credentials", "admin", "--embed-certs",
         f"--client-certificate={pki}/admin.crt", f"--client-key={pki}/admin.key"])  # fmt: skip
    run([KUBECTL, *kubectl, "config", "set-context", "test", "--cluster=test", "--user=admin"])
    run([KUBECTL, *kubectl, "config", "use-context", "test"])
    wait_for(lambda: _ready(folder), 120, "kube-apiserver /readyz", every=0.5)


def _ready(folder: Path) -> bool:
    try:
        return (
            run([KUBECTL, "--kubeconfig", folder / "kubeconfig", "get", "--raw", "/readyz"]) == "ok"
        )
    except RuntimeError:
        return False


def stop_envtest(folder: Path) -> None:
    for name in ("apiserver", "etcd"):
        pid_file = folder / "run" / f"{name}.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
            pid_file.unlink()


AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    verbs: ["create", "update", "patch", "delete", "deletecollection"]
  - level: None
"""


def wait_for(check: Any, timeout: float = 60.0, what: str = "", every: float = 0.25) -> Any:
    """Poll `check()` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not met in {timeout}s: {what or check}")
        time.sleep(every)


@dataclass(frozen=True)
class Identity:
    """The operator's ServiceAccount login, as kubeconfigs of three kinds."""

    embedded: Path
    relative: Path
    exec_plugin: Path


def install_operator_rbac(plane: ControlPlane) -> None:
    """The CRDs, the operator's namespace and ServiceAccount, and the namespaced RBAC."""
    plane.kubectl(
        "apply", "--server-side", "-f", str(REPO / "manifests/crd/mastertradedeployments.yaml")
    )
    plane.kubectl(
        "apply", "--server-side", "-f", str(REPO / "manifests/operator/peering-crds.yaml")
    )
    plane.kubectl(
        "wait", "--for=condition=Established", "crd/mastertradedeployments.mastertrade.io"
    )
    plane.kubectl("create", "namespace", OPERATOR_NAMESPACE)
    plane.kubectl(
        "apply",
        "-n",
        OPERATOR_NAMESPACE,
        "-f",
        str(REPO / "manifests/operator/serviceaccount.yaml"),
    )
    plane.kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev")
    plane.kubectl("apply", "--server-side", "-f", str(REPO / "manifests/namespaced/rbac.yaml"))


def build_identity(plane: ControlPlane, folder: Path) -> Identity:
    """Kubeconfigs logging in as the operator's ServiceAccount (token valid for 2 hours)."""
    token = plane.kubectl(
        "create", "token", "mastertrade-operator", "-n", OPERATOR_NAMESPACE, "--duration=2h"
    ).strip()
    admin = yaml.safe_load(plane.kubeconfig.read_text())
    ca_data = admin["clusters"][0]["cluster"]["certificate-authority-data"]
    folder.mkdir(parents=True, exist_ok=True)
    cluster = {"server": plane.server}

    def write(name: str, cluster_extra: dict[str, Any], user: dict[str, Any]) -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {**cluster, **cluster_extra}}],
            "users": [{"name": "operator", "user": user}],
            "contexts": [
                {
                    "name": "operator",
                    "context": {
                        "cluster": "test",
                        "user": "operator",
                        "namespace": WATCHED_NAMESPACE,
                    },
                }
            ],
            "current-context": "operator",
        }
        path = folder / name / "kubeconfig"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config))
        return path

    embedded = write("embedded", {"certificate-authority-data": ca_data}, {"token": token})
    (folder / "relative" / "pki").mkdir(parents=True, exist_ok=True)
    (folder / "relative" / "pki" / "ca.crt").write_bytes(base64.b64decode(ca_data))
    (folder / "relative" / "token").write_text(token)
    relative = write("relative", {"certificate-authority": "pki/ca.crt"}, {"tokenFile": "token"})
    plugin = folder / "exec" / "credential.sh"
    plugin.parent.mkdir(parents=True, exist_ok=True)
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": token},
    }
    plugin.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(credential)}\nEOF\n")
    plugin.chmod(0o755)
    exec_user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(plugin),
            "interactiveMode": "Never",
        }
    }
    exec_plugin = write("exec", {"certificate-authority-data": ca_data}, exec_user)
    return Identity(embedded=embedded, relative=relative, exec_plugin=exec_plugin)


def python_bin() -> Path:
    """The venv's scripts folder (mastertrade-operator lives beside its python)."""
    return Path(sys.executable).parent
