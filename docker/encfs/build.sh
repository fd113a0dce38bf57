#!/usr/bin/env bash
# Builds the encfs sidecar image from the repository root: docker/encfs/build.sh [tag]
#   ENCFS_ENGINE       the container engine's command line (default: docker, else podman)
#   ENCFS_BUILD_CA     a CA bundle npm must trust inside the build (a TLS-intercepting proxy's),
#                      handed over as the build secret npm-ca: it never lands in a layer
#   ENCFS_BUILD_FLAGS  more flags for the engine's build (e.g. --pull=never --network host)
set -euo pipefail
cd "$(dirname "$0")/../.."
tag="${1:-encfs:latest}"
default_engine=docker
command -v docker >/dev/null 2>&1 || default_engine=podman
read -r -a engine <<<"${ENCFS_ENGINE:-$default_engine}"
read -r -a flags <<<"${ENCFS_BUILD_FLAGS:-}"
secret=()
if [ -n "${ENCFS_BUILD_CA:-}" ]; then
  [ -r "$ENCFS_BUILD_CA" ] || { echo "build.sh: ENCFS_BUILD_CA=$ENCFS_BUILD_CA cannot be read" >&2; exit 1; }
  secret=(--secret "id=npm-ca,src=$ENCFS_BUILD_CA")
fi
"${engine[@]}" build "${flags[@]}" "${secret[@]}" -f docker/encfs/Dockerfile -t "$tag" .
echo "built $tag"
