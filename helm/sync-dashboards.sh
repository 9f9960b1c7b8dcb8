#!/usr/bin/env bash
# Copy the generated dashboards and alert rules into the chart: Helm can only read files inside
# the chart directory. tests/test_helm.py fails when the chart's copies are stale.
#   helm/sync-dashboards.sh            # refresh helm/fleetpulse/files
#   helm/sync-dashboards.sh OUT_DIR    # write the copies elsewhere (the staleness test does)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$repo/helm/fleetpulse/files}"

mkdir -p "$dest/dashboards" "$dest/alerts"
# Start from empty so files removed at the source disappear from the chart too.
find "$dest/dashboards" -mindepth 1 -delete
find "$dest/alerts" -mindepth 1 -delete

shopt -s nullglob
dashboards=("$repo"/dashboards/*.json)
for f in "${dashboards[@]}"; do
  cp -- "$f" "$dest/dashboards/"
done
alerts=0
if [ -d "$repo/alerts/generated" ]; then
  cp -R -- "$repo/alerts/generated/." "$dest/alerts/"
  alerts=$(find "$dest/alerts" -type f | wc -l)
fi
echo "synced ${#dashboards[@]} dashboard(s) and ${alerts} alert file(s) into $dest"
