#!/usr/bin/env bash
# Check graphrec's Kubernetes manifests the way CI does:
#   1. kustomize builds the base and every overlay;
#   2. kubernetes-validate --strict validates what they build against the schemas of the
#      Kubernetes version it bundles (the Strimzi resources in kafka/ are custom resources it
#      has no schema for: it only parses them);
#   3. checkov scans the directory (Kubernetes, kustomize, Dockerfile, secrets) with the
#      skips .checkov.yaml lists and explains.
#
# Usage: deploy/k8s/check.sh [DIR]       DIR defaults to deploy/k8s; exit 0 when all pass.
# Tools are installed once, pinned, into the graphrec cache: checkov and kubernetes-validate
# into their own virtualenv (their pins clash with graphrec's), kustomize with `go install`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$(cd "${1:-$here}" && pwd)
cache=${GRAPHREC_CACHE:-$HOME/.cache/graphrec}
python=${GRAPHREC_PYTHON:-python3}
CHECKOV_VERSION=3.3.30
KUBERNETES_VALIDATE_VERSION=1.37.0
KUSTOMIZE_VERSION=v5.7.1  # the newest whose go.mod this machine's Go (1.26) can build
tools="$cache/k8s-tools-$(echo "$CHECKOV_VERSION $KUBERNETES_VALIDATE_VERSION" | sha256sum | cut -c1-12)"
gobin="$cache/go/bin"

if [ ! -f "$tools/.complete" ]; then
    echo "k8s-check: installing checkov $CHECKOV_VERSION and kubernetes-validate $KUBERNETES_VALIDATE_VERSION" >&2
    rm -rf "$tools"
    "$python" -m venv "$tools"
    PIP_CACHE_DIR="$cache/pip" "$tools/bin/pip" install -q --disable-pip-version-check \
        "checkov==$CHECKOV_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2
    touch "$tools/.complete"
fi
if ! { [ -x "$gobin/kustomize" ] && go version -m "$gobin/kustomize" 2>/dev/null | grep -q "$KUSTOMIZE_VERSION"; }; then
    echo "k8s-check: go install kustomize $KUSTOMIZE_VERSION" >&2
    GOBIN="$gobin" GOPATH="$cache/go" GOMODCACHE="$cache/go/mod" GOFLAGS=-mod=mod \
        go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2
fi

built=$(mktemp -d)
trap 'rm -rf "$built"' EXIT
status=0
for kustomization in $(cd "$dir" && find . -name kustomization.yaml | sort); do
    target=$(dirname "$kustomization")
    out="$built/$(echo "$target" | tr '/.' '__').yaml"
    echo "== kustomize build $target" >&2
    if "$gobin/kustomize" build "$dir/$target" >"$out"; then
        echo "== kubernetes-validate --strict $target" >&2
        "$tools/bin/kubernetes-validate" --strict --quiet "$out" || status=1
    else
        status=1
    fi
done
if [ -d "$dir/kafka" ]; then
    echo "== kubernetes-validate kafka/ (custom resources: parsed only)" >&2
    "$tools/bin/kubernetes-validate" --quiet --no-warn "$dir"/kafka/*.yaml || status=1
fi
echo "== checkov -d $dir" >&2
"$tools/bin/checkov" -d "$dir" --config-file "$dir/.checkov.yaml" --skip-download --quiet --compact || status=1
[ "$status" -eq 0 ] && echo "k8s-check: all manifests pass" >&2
exit "$status"
