#!/usr/bin/env bash
# crds/ is the API's source of truth; the Helm chart ships a copy in its crds/ folder
# (Helm installs those before the templates). `--check` fails when the copy is stale.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST="$ROOT/charts/personal-cloud/crds"
if [ "${1:-}" = "--check" ]; then
  if ! diff -r -q <(cd "$ROOT/crds" && for f in *.yaml; do echo "== $f"; cat "$f"; done) \
                  <(cd "$DEST" && for f in *.yaml; do echo "== $f"; cat "$f"; done) >/dev/null; then
    echo "charts/personal-cloud/crds is stale against crds/: run 'make gen'" >&2
    exit 1
  fi
  exit 0
fi
rm -f "$DEST"/*.yaml
cp "$ROOT"/crds/*.yaml "$DEST"/
