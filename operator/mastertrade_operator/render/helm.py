"""The helm binary the operator renders the chart with: found once, checked at start, run as
`helm template` with the values on standard input.

The operator image carries a pinned helm (checksum verified at build time); outside the image the
binary is the one named by `--helm`/`MASTERTRADE_HELM`, else `helm` on PATH. A missing binary or
one of an unsupported version is an error when the operator starts, not at its first reconcile.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PINNED_VERSION = "v4.1.4"
"""The helm in the operator image and in `make tools`."""
SUPPORTED_MAJOR = (3, 4)
MINIMUM_VERSION = (3, 14)
VERSION_PATTERN = re.compile(r"^v(\d+)\.(\d+)\.(\d+)")
TIMEOUT = 60.0


class HelmNotUsableError(RuntimeError):
    """No helm binary, or one the operator cannot use; the message says what to install."""


class RenderError(ValueError):
    """`helm template` refused the values; the message is the chart's own (what to fix)."""


@dataclass(frozen=True)
class Helm:
    """A helm binary of a supported version."""

    binary: str
    version: str

    def template_command(self, release: str, namespace: str, chart: Path) -> list[str]:
        return [
            self.binary, "template", release, str(chart), "--namespace", namespace,
            "--skip-tests", "--values", "-",
        ]  # fmt: skip

    def template(self, release: str, namespace: str, chart: Path, values: dict[str, Any]) -> str:
        """The rendered YAML stream (blocking: for the command line)."""
        done = subprocess.run(
            self.template_command(release, namespace, chart),
            input=json.dumps(values).encode(),
            capture_output=True,
            timeout=TIMEOUT,
            check=False,
        )
        return _output(done.returncode, done.stdout, done.stderr)

    async def template_async(
        self, release: str, namespace: str, chart: Path, values: dict[str, Any]
    ) -> str:
        """The rendered YAML stream, without blocking the event loop (for the operator)."""
        process = await asyncio.create_subprocess_exec(
            *self.template_command(release, namespace, chart),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(
                process.communicate(json.dumps(values).encode()), TIMEOUT
            )
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        return _output(process.returncode or 0, stdout, stderr)


def _output(returncode: int, stdout: bytes, stderr: bytes) -> str:
    if returncode != 0:
        raise RenderError(explain_failure(stderr.decode(errors="replace")))
    return stdout.decode()


def explain_failure(stderr: str) -> str:
    """The chart's message without helm's wrapping (`Error: execution error at (...): `)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = "\n".join(line.removeprefix("Error: ") for line in lines)
    return re.sub(r"execution error at \([^)]*\):\s*", "", text) or "helm template failed"


def parse_version(text: str) -> tuple[int, int, int]:
    match = VERSION_PATTERN.match(text.strip())
    if match is None:
        raise HelmNotUsableError(f"cannot read helm's version from {text.strip()!r}")
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def find_helm(named: str | None = None) -> Helm:
    """The helm to render with: `named` (a path or a command), else `$MASTERTRADE_HELM`, else
    `helm` on PATH."""
    wanted = named or os.environ.get("MASTERTRADE_HELM") or "helm"
    binary = shutil.which(wanted)
    if binary is None:
        raise HelmNotUsableError(
            f"helm not found ({wanted!r}): install helm {PINNED_VERSION} and put it on PATH, "
            "or name it with --helm or MASTERTRADE_HELM"
        )
    try:
        done = subprocess.run(
            [binary, "version", "--template", "{{.Version}}"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
        )
    except (OSError, subprocess.SubprocessError) as error:
        raise HelmNotUsableError(f"{binary} does not run as helm: {error}") from None
    version = done.stdout.strip()
    major, minor, _ = parse_version(version)
    if major not in SUPPORTED_MAJOR or (major, minor) < MINIMUM_VERSION:
        raise HelmNotUsableError(
            f"{binary} is helm {version}; the operator needs helm 3.14 or newer (3.x or 4.x; "
            f"its image carries {PINNED_VERSION})"
        )
    return Helm(binary=binary, version=version)
