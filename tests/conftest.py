"""What every tier shares: the project's own helm (`make tools`) is the one the operator's
commands find, as `MASTERTRADE_HELM` tells them outside the operator image."""

from __future__ import annotations

import os

from tests.helm import helm_binary

os.environ.setdefault("MASTERTRADE_HELM", helm_binary())
