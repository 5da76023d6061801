#!/usr/bin/env bash
# MasterTrade on a local kind cluster in one command (`make kind-up`); `make kind-down` undoes it.
#
# Checks its prerequisites first (a reachable Docker daemon, kind, helm, kubectl) and stops before
# doing anything when one is missing. Then: creates the kind cluster from kind-config.yaml (or
# reuses it), builds the services and operator images, loads them into the cluster, installs
# MasterTrade with the values-kind sizes, waits until it is Ready and prints the URLs.
#
#   MODE=operator  the operator from manifests/ (deploy/kind), then
#                  manifests/samples/kind-small.yaml; waits for the resource's Ready condition
#   MODE=chart     (or helm) helm install of charts/mastertrade with values-kind.yaml
#   MODE=auto      operator when manifests/kustomization.yaml exists, else chart (the default)
#   KIND_CLUSTER_NAME (mastertrade), KIND_NODE_IMAGE (kind's default), TIMEOUT (15m)
set -euo pipefail

here=${BASH_SOURCE[0]%/*}
[[ $here == "${BASH_SOURCE[0]}" ]] && here=.
REPO=$(cd "$here/.." && pwd)
# shellcheck source=scripts/kind-lib.sh
source "$REPO/scripts/kind-lib.sh"

MODE=${MODE:-auto}
TIMEOUT=${TIMEOUT:-15m}

MODE=$(resolve_mode "$MODE") || exit 2
if [[ $MODE == operator && ! -f $REPO/manifests/kustomization.yaml ]]; then
  say "MODE=operator needs manifests/kustomization.yaml (the operator's manifests), which this" \
    "checkout does not have yet; use MODE=chart. Nothing was done."
  exit 2
fi

check_prerequisites kind-up docker kind helm kubectl || exit 1
HELM=$(tool helm)
KUBECTL=$(tool kubectl)
kubectl() { "$KUBECTL" --context "$CONTEXT" "$@"; }
helm() { "$HELM" --kube-context "$CONTEXT" "$@"; }

create_cluster() {
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    say "kind cluster '$CLUSTER' exists: using it"
    return
  fi
  say "creating kind cluster '$CLUSTER' from kind-config.yaml"
  kind create cluster --name "$CLUSTER" --config "$REPO/kind-config.yaml" --wait 120s \
    ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
}

build_and_load_images() {
  say "building mastertrade:$IMAGE_TAG and mastertrade-operator:$IMAGE_TAG"
  docker build --file "$REPO/services/Dockerfile" --tag "mastertrade:$IMAGE_TAG" "$REPO"
  docker build --file "$REPO/operator/Dockerfile" --tag "mastertrade-operator:$IMAGE_TAG" "$REPO"
  say "loading the images into '$CLUSTER'"
  kind load docker-image --name "$CLUSTER" "mastertrade:$IMAGE_TAG" "mastertrade-operator:$IMAGE_TAG"
}

install_with_operator() {
  say "installing the operator (deploy/kind: manifests/ with the local image)"
  # The CRDs first: objects of a kind defined in the same apply (kopf's peering) would be refused
  kubectl apply --server-side --force-conflicts \
    -f "$REPO/manifests/crd/mastertradedeployments.yaml" \
    -f "$REPO/manifests/operator/peering-crds.yaml"
  kubectl wait --for=condition=Established --timeout=60s \
    crd/mastertradedeployments.mastertrade.io crd/clusterkopfpeerings.kopf.dev \
    crd/kopfpeerings.kopf.dev
  kubectl apply --server-side --force-conflicts -k "$REPO/deploy/kind"
  local deployment
  while read -r deployment; do
    [[ -n $deployment ]] || continue
    kubectl rollout status --timeout=5m -n "${deployment%%/*}" "deployment/${deployment#*/}"
  done < <(kubectl kustomize "$REPO/deploy/kind" | kubectl get -f - \
    -o jsonpath='{range .items[?(@.kind=="Deployment")]}{.metadata.namespace}/{.metadata.name}{"\n"}{end}')
  say "applying ${SAMPLE#"$REPO"/} and waiting up to $TIMEOUT for Ready"
  kubectl apply -f "$SAMPLE"
  kubectl wait --for=condition=Ready --timeout="$TIMEOUT" -f "$SAMPLE"
}

install_with_chart() {
  say "installing charts/mastertrade with values-kind.yaml; waiting up to $TIMEOUT"
  kubectl apply -f "$REPO/deploy/kind/namespace.yaml"
  helm upgrade --install "$RELEASE" "$REPO/charts/mastertrade" --namespace "$NAMESPACE" \
    --values "$REPO/charts/mastertrade/values-kind.yaml" --set "image.tag=$IMAGE_TAG" \
    --wait --timeout "$TIMEOUT"
}

# The entry points, as kind-config.yaml maps them: workload, Service port, host port, nodePort, path
ENTRY_POINTS=(
  "monitoring-ui 3000 3000 30300 /"
  "grafana 3001 3001 30301 /"
  "prometheus 9090 9090 30909 /"
  "rabbitmq 15672 15672 31567 /"
  "api-gateway 8080 8080 30080 /health"
)

print_urls() {
  local entry name port host node_port path found forwards=()
  printf '\nMasterTrade is Ready on kind cluster %s (namespace %s):\n' "$CLUSTER" "$NAMESPACE"
  for entry in "${ENTRY_POINTS[@]}"; do
    read -r name port host node_port path <<<"$entry"
    found=$(kubectl get service -n "$NAMESPACE" "$RELEASE-$name" \
      -o jsonpath="{.spec.ports[?(@.port==$port)].nodePort}")
    if [[ $found == "$node_port" ]]; then
      printf '  %-14s http://127.0.0.1:%s%s\n' "$name" "$host" "$path"
    else
      printf '  %-14s http://127.0.0.1:%s%s  (after the port-forward below)\n' "$name" "$host" "$path"
      forwards+=("svc/$RELEASE-$name $host:$port")
    fi
  done
  if [[ ${#forwards[@]} -gt 0 ]]; then
    printf '\nThose Services have no NodePort that kind-config.yaml maps to the host (the chart renders\n'
    printf 'ClusterIP Services unless values-kind.yaml asks for NodePorts); forward them\n'
    printf '(each in a terminal of its own, or with & at the end):\n'
    for entry in "${forwards[@]}"; do
      printf '  kubectl --context %s port-forward -n %s %s\n' "$CONTEXT" "$NAMESPACE" "$entry"
    done
  fi
  printf '\nGrafana: user admin, password: kubectl --context %s get secret -n %s %s-credentials -o jsonpath='"'"'{.data.grafana-admin-password}'"'"' | base64 -d\n' \
    "$CONTEXT" "$NAMESPACE" "$RELEASE"
  printf 'Status:  kubectl --context %s get all -n %s    Remove: make kind-down\n' "$CONTEXT" "$NAMESPACE"
}

create_cluster
build_and_load_images
if [[ $MODE == operator ]]; then install_with_operator; else install_with_chart; fi
print_urls
