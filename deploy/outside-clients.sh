#!/usr/bin/env bash
# Install the clients real users call graphrec with, for the integration and fault tests:
# kcat (Debian package), grpcurl and ghz (`go install`, pinned, built into the graphrec cache).
#
# Usage: deploy/outside-clients.sh        prints the directory holding grpcurl and ghz
# Exits 0 when all three are there; a client that cannot be installed is named on stderr and the
# script exits 1 (the tests that need it then fail under CI=true and skip otherwise).
set -euo pipefail
cache=${GRAPHREC_CACHE:-$HOME/.cache/graphrec}
gobin="$cache/go/bin"
GRPCURL_VERSION=v1.9.4
GHZ_VERSION=v0.93.0
status=0

if ! command -v kcat >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    { $sudo apt-get update -qq &&
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat; } >&2 ||
        { echo "outside-clients: could not install kcat" >&2; status=1; }
fi

install_go() {  # name, module path, version
    local name=$1 module=$2 version=$3
    if [ -x "$gobin/$name" ] && go version -m "$gobin/$name" 2>/dev/null | grep -q "$version"; then
        return 0
    fi
    if ! command -v go >/dev/null 2>&1; then
        echo "outside-clients: go is not installed, cannot build $name" >&2
        return 1
    fi
    echo "outside-clients: go install $module@$version" >&2
    GOBIN="$gobin" GOPATH="$cache/go" GOMODCACHE="$cache/go/mod" GOFLAGS=-mod=mod \
        go install "$module@$version" >&2
}
install_go grpcurl github.com/fullstorydev/grpcurl/cmd/grpcurl "$GRPCURL_VERSION" || status=1
install_go ghz github.com/bojand/ghz/cmd/ghz "$GHZ_VERSION" || status=1
echo "$gobin"
exit $status
