#!/usr/bin/env bash
# Deletes the kind cluster that `make kind-up` created, with everything in it (PVCs included: their
# volumes live inside the node container). The images stay in Docker for the next kind-up.
#   KIND_CLUSTER_NAME (mastertrade)
set -euo pipefail

here=${BASH_SOURCE[0]%/*}
[[ $here == "${BASH_SOURCE[0]}" ]] && here=.
REPO=$(cd "$here/.." && pwd)
# shellcheck source=scripts/kind-lib.sh
source "$REPO/scripts/kind-lib.sh"

check_prerequisites kind-down docker kind || exit 1
if ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  say "no kind cluster named '$CLUSTER': nothing to delete"
  exit 0
fi
kind delete cluster --name "$CLUSTER"
