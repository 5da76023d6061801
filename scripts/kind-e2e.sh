#!/usr/bin/env bash
# Day-2 checks on a cluster that `make kind-up` installed, one step per call, as the e2e workflow
# runs them (and as you can, on your own kind cluster):
#
#   scripts/kind-e2e.sh helm-test     `helm test` of the release (chart path only)
#   scripts/kind-e2e.sh scale         strategy-service to 2 replicas, waits until both are ready
#   scripts/kind-e2e.sh upgrade       MasterTrade's image to a new tag, waits for the rollout
#   scripts/kind-e2e.sh delete        deletes the release / resource, checks that the PVCs stay
#
# MODE=chart (or helm) or operator, as for kind-up; the same KIND_CLUSTER_NAME.
set -euo pipefail

here=${BASH_SOURCE[0]%/*}
[[ $here == "${BASH_SOURCE[0]}" ]] && here=.
REPO=$(cd "$here/.." && pwd)
# shellcheck source=scripts/kind-lib.sh
source "$REPO/scripts/kind-lib.sh"

MODE=${MODE:-auto}
TIMEOUT=${TIMEOUT:-10m}
MODE=$(resolve_mode "$MODE") || exit 2
check_prerequisites kind-e2e docker kind helm kubectl || exit 1
HELM=$(tool helm)
KUBECTL=$(tool kubectl)
kubectl() { "$KUBECTL" --context "$CONTEXT" "$@"; }
helm() { "$HELM" --kube-context "$CONTEXT" "$@"; }

SCALED=strategy-service
SCALED_KEY=strategyService
PROBE=api-gateway
UPGRADE_TAG=${UPGRADE_TAG:-e2e-upgrade}

# change_values JSON: a merge into the chart's values (chart path) or the resource's spec
change_values() {
  if [[ $MODE == chart ]]; then
    local file
    file=$(mktemp --suffix=.yaml)
    printf '%s\n' "$1" >"$file"
    helm upgrade "$RELEASE" "$REPO/charts/mastertrade" --namespace "$NAMESPACE" --reuse-values \
      --values "$file" --wait --timeout "$TIMEOUT"
    rm -f "$file"
  else
    kubectl patch -f "$SAMPLE" --type merge --patch "{\"spec\": $1}"
  fi
}

wait_ready() {
  if [[ $MODE == operator ]]; then
    kubectl wait --for=condition=Ready --timeout="$TIMEOUT" -f "$SAMPLE"
  fi
}

step_helm_test() {
  if [[ $MODE != chart ]]; then
    say "helm test belongs to the chart path; the operator path checks the Ready condition"
    wait_ready
    return
  fi
  helm test "$RELEASE" --namespace "$NAMESPACE" --timeout 5m --logs
}

step_scale() {
  change_values "{\"workloads\": {\"$SCALED_KEY\": {\"replicas\": 2}}}"
  kubectl wait --for=jsonpath='{.status.readyReplicas}'=2 --timeout="$TIMEOUT" \
    -n "$NAMESPACE" "deployment/$RELEASE-$SCALED"
  wait_ready
  say "$RELEASE-$SCALED runs 2 ready replicas"
}

step_upgrade() {
  # A new tag of the same build stands for a new release of the image
  docker tag "mastertrade:$IMAGE_TAG" "mastertrade:$UPGRADE_TAG"
  kind load docker-image --name "$CLUSTER" "mastertrade:$UPGRADE_TAG"
  change_values "{\"image\": {\"tag\": \"$UPGRADE_TAG\"}}"
  kubectl wait --timeout="$TIMEOUT" -n "$NAMESPACE" "deployment/$RELEASE-$PROBE" \
    --for=jsonpath='{.spec.template.spec.containers[0].image}'="mastertrade:$UPGRADE_TAG"
  kubectl rollout status --timeout="$TIMEOUT" -n "$NAMESPACE" "deployment/$RELEASE-$PROBE"
  wait_ready
  say "$RELEASE-$PROBE rolled out mastertrade:$UPGRADE_TAG"
}

# wait_gone OBJECT...: until none of the objects exists (they may be gone already)
wait_gone() {
  local deadline=$((SECONDS + 600)) left
  while left=$(kubectl get -n "$NAMESPACE" "$@" --ignore-not-found -o name) && [[ -n $left ]]; do
    if ((SECONDS > deadline)); then
      say "still there after 10 minutes: ${left//$'\n'/ }"
      return 1
    fi
    sleep 5
  done
}

pvcs() {
  kubectl get pvc -n "$NAMESPACE" -l "app.kubernetes.io/instance=$RELEASE" -o name | sort
}

step_delete() {
  local before after
  before=$(pvcs)
  if [[ -z $before ]]; then
    say "no PVCs of $RELEASE before the delete: nothing to check"
    return 1
  fi
  if [[ $MODE == chart ]]; then
    helm uninstall "$RELEASE" --namespace "$NAMESPACE" --wait --timeout "$TIMEOUT"
  else
    kubectl delete -f "$SAMPLE" --wait --timeout="$TIMEOUT"
  fi
  wait_gone "statefulset/$RELEASE-postgres" "deployment/$RELEASE-$PROBE"
  after=$(pvcs)
  if [[ $after != "$before" ]]; then
    say "PVCs before the delete:" "${before//$'\n'/ }"
    say "PVCs after the delete: " "${after//$'\n'/ }"
    return 1
  fi
  say "workloads deleted; the PVCs stay:" "${after//$'\n'/ }"
}

case ${1:-} in
  helm-test) step_helm_test ;;
  scale) step_scale ;;
  upgrade) step_upgrade ;;
  delete) step_delete ;;
  *) say "usage: ${0##*/} helm-test|scale|upgrade|delete"; exit 2 ;;
esac
