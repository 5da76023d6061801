"""Every script in scripts/ passes shellcheck (warnings and errors; Debian's `shellcheck`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = sorted((REPO / "scripts").glob("*.sh"))
# Keeps going when a check fails, on purpose (it starts what it can, then waits for each)
LOOSE = {"ensure-infra.sh"}


def test_scripts_pass_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    assert shellcheck is not None, "shellcheck not found: install Debian's shellcheck package"
    assert SCRIPTS
    done = subprocess.run(
        [shellcheck, "--external-sources", "--severity=warning",
         *(str(p.relative_to(REPO)) for p in SCRIPTS)],
        capture_output=True, text=True, cwd=REPO, check=False, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_scripts_are_strict_bash() -> None:
    for script in SCRIPTS:
        text = script.read_text()
        if script.name.endswith("-lib.sh"):  # sourced by the others, which set the options
            assert text.startswith("# shellcheck shell=bash")
            continue
        assert text.startswith("#!/usr/bin/env bash\n"), script.name
        assert "\nset -euo pipefail\n" in text or script.name in LOOSE, script.name
