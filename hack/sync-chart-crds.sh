#!/usr/bin/env bash
# crds/ is the API's source of truth; the Helm chart ships a copy in its crds/ folder
# (Helm installs those before the templates), and Chart.yaml carries package.json's
# version. `--check` fails when either is stale.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST="$ROOT/charts/personal-cloud/crds"
# One version source: package.json. The chart's version and appVersion (the image tag
# it deploys by default) follow it.
VERSION=$(node -p "require('$ROOT/package.json').version")
CHART_YAML="$ROOT/charts/personal-cloud/Chart.yaml"
if [ "${1:-}" = "--check" ]; then
  if ! grep -qx "version: $VERSION" "$CHART_YAML" || ! grep -qx "appVersion: \"$VERSION\"" "$CHART_YAML"; then
    echo "charts/personal-cloud/Chart.yaml does not carry package.json's version $VERSION: run 'make gen'" >&2
    exit 1
  fi
  if ! diff -r -q <(cd "$ROOT/crds" && for f in *.yaml; do echo "== $f"; cat "$f"; done) \
                  <(cd "$DEST" && for f in *.yaml; do echo "== $f"; cat "$f"; done) >/dev/null; then
    echo "charts/personal-cloud/crds is stale against crds/: run 'make gen'" >&2
    exit 1
  fi
  exit 0
fi
rm -f "$DEST"/*.yaml
cp "$ROOT"/crds/*.yaml "$DEST"/
sed -i -e "s/^version: .*/version: $VERSION/" -e "s/^appVersion: .*/appVersion: \"$VERSION\"/" "$CHART_YAML"
