#!/usr/bin/env bash
# Sets the release version everywhere it is written: the chart's version and appVersion (the
# images' default tag: image.tag and operator.image.tag are empty, so they follow appVersion)
# and the Python distribution's version. Usage: scripts/set-release-version.sh v1.2.3 [REPO_DIR]
set -euo pipefail
tag="${1:?usage: set-release-version.sh vMAJOR.MINOR.PATCH [repository folder]}"
root="${2:-$(cd "$(dirname "$0")/.." && pwd)}"
version="${tag#v}"
if ! [[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  echo "set-release-version: '$tag' is not a version tag like v1.2.3 (or v1.2.3-rc.1)" >&2
  exit 2
fi
chart="$root/charts/mastertrade/Chart.yaml"
sed -i -E "s/^version: .*/version: $version/; s/^appVersion: .*/appVersion: \"$version\"/" "$chart"
sed -i -E "0,/^version = .*/s//version = \"$version\"/" "$root/pyproject.toml"
echo "release $version: $(grep -E '^(version|appVersion):' "$chart" | tr '\n' ' ')"
