#!/usr/bin/env bash
# Validates deploy/kubernetes/*.yaml offline against the Kubernetes OpenAPI schemas shipped by
# `kubernetes-validate` (PyPI; installed with pip when missing), strictly (unknown fields are errors), and checks
# that the ConfigMap's lander.toml is a configuration lander accepts (`lander config check`, when a lander binary
# is given in $CHECK_LANDER_BIN or found on PATH). Exits non-zero on any invalid manifest.
#
# Usage: scripts/check-kubernetes.sh [kubernetes-version]   (default: the validator's newest, and 1.29.0)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=deploy/kubernetes

if ! command -v kubernetes-validate >/dev/null 2>&1; then
  python3 -m pip install --quiet kubernetes-validate >&2
fi

# The kustomization is not a Kubernetes resource (no schema): every other manifest is validated.
manifests=()
for f in "$dir"/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
[ ${#manifests[@]} -gt 0 ] || { echo "check-kubernetes: no manifests in $dir" >&2; exit 1; }

versions=("${1:-}")
[ -n "${1:-}" ] || versions=("" "1.29.0")
for v in "${versions[@]}"; do
  flags=(--strict)
  [ -z "$v" ] || flags+=(-k "$v")
  kubernetes-validate "${flags[@]}" "${manifests[@]}"
done

# Every file the kustomization lists exists (kubectl apply -k would fail otherwise).
while read -r res; do
  [ -f "$dir/$res" ] || { echo "check-kubernetes: kustomization.yaml lists $res, which does not exist" >&2; exit 1; }
done < <(sed -n 's/^  - \(.*\.yaml\)$/\1/p' "$dir/kustomization.yaml")

lander=${CHECK_LANDER_BIN:-$(command -v lander || true)}
if [ -n "$lander" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 - "$dir/configmap.yaml" "$tmp/lander.toml" <<'PY'
import sys
text = open(sys.argv[1]).read()
# The block scalar under `lander.toml: |`, de-indented (no YAML library needed).
lines = text.split("\n")
start = next(i for i, l in enumerate(lines) if l.strip() == "lander.toml: |") + 1
indent = len(lines[start]) - len(lines[start].lstrip())
body = []
for l in lines[start:]:
    if l.strip() and len(l) - len(l.lstrip()) < indent:
        break
    body.append(l[indent:])
open(sys.argv[2], "w").write("\n".join(body))
PY
  "$lander" config check --config "$tmp/lander.toml" --worker 0/3 >/dev/null
  echo "check-kubernetes: the ConfigMap's lander.toml is valid for $lander"
fi
echo "check-kubernetes: ${#manifests[@]} manifest(s) valid"
