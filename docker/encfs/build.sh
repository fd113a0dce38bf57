#!/usr/bin/env bash
# Builds the encfs sidecar image from the repository root: docker/encfs/build.sh [tag]
set -euo pipefail
cd "$(dirname "$0")/../.."
tag="${1:-encfs:latest}"
docker build -f docker/encfs/Dockerfile -t "$tag" .
echo "built $tag"
