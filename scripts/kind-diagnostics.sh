#!/usr/bin/env bash
# Collects what explains a failed installation into a folder (default out/diagnostics): every
# object, descriptions, events, the logs of every container (and of its previous run), the
# MasterTradeDeployment resources, helm's view and kind's node logs. It gathers what it can and
# does not fail when a piece is missing. The e2e workflow uploads the folder when a job fails.
#   scripts/kind-diagnostics.sh [DIR]      KIND_CLUSTER_NAME (mastertrade)
set -euo pipefail

here=${BASH_SOURCE[0]%/*}
[[ $here == "${BASH_SOURCE[0]}" ]] && here=.
REPO=$(cd "$here/.." && pwd)
# shellcheck source=scripts/kind-lib.sh
source "$REPO/scripts/kind-lib.sh"

out=${1:-$REPO/out/diagnostics}
mkdir -p "$out/logs"
if ! KUBECTL=$(tool kubectl); then
  say "kubectl not found: nothing collected"
  exit 0
fi
HELM=$(tool helm) || HELM=
kubectl() { "$KUBECTL" --context "$CONTEXT" "$@"; }

# collect FILE COMMAND...: the command's output and errors into FILE, whatever its exit status
collect() {
  local file=$1
  shift
  "$@" >"$out/$file" 2>&1 || true
}

collect get-all.txt kubectl get all,pvc,pv,configmap,networkpolicy,poddisruptionbudget -A -o wide
collect events.txt kubectl get events -A --sort-by=.lastTimestamp
collect describe-nodes.txt kubectl describe nodes
collect top-pods.txt kubectl top pods -A
collect mastertradedeployments.yaml kubectl get mastertradedeployments -A -o yaml
namespaces=$(kubectl get namespaces -o jsonpath='{.items[*].metadata.name}' 2>/dev/null) || true
for namespace in $namespaces; do
  [[ $namespace == kube-* || $namespace == local-path-storage ]] && continue
  collect "describe-$namespace.txt" kubectl describe all,pvc -n "$namespace"
  pods=$(kubectl get pods -n "$namespace" -o jsonpath='{.items[*].metadata.name}' 2>/dev/null) || true
  for pod in $pods; do
    collect "logs/$namespace-$pod.log" \
      kubectl logs -n "$namespace" "pod/$pod" --all-containers --prefix --timestamps
    collect "logs/$namespace-$pod.previous.log" \
      kubectl logs -n "$namespace" "pod/$pod" --all-containers --prefix --timestamps --previous
  done
done
if [[ -n $HELM ]]; then
  collect helm-list.txt "$HELM" --kube-context "$CONTEXT" list -A
  collect helm-status.txt "$HELM" --kube-context "$CONTEXT" status "$RELEASE" -n "$NAMESPACE" \
    --show-resources
fi
if command -v kind >/dev/null; then
  collect kind-export.txt kind export logs --name "$CLUSTER" "$out/kind"
fi
say "diagnostics in $out"
