#!/usr/bin/env bash
# Build the lab tool's image (Dockerfile) where no registry answers: the Python packages come from a
# wheelhouse made with this machine's pip, and the Debian root from the project's own lab-base image
# (lab images build), exported and re-imported so the tool image carries none of the lab.image labels
# (lab images prune would take it for a stale lab image). With a registry, plain `docker build .` does.
#   sudo bash scripts/build_tool_image.sh [TAG]        (default lab-tool:local)
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-lab-tool:local}
.venv/bin/lab images build -q base
rm -rf wheelhouse
.venv/bin/pip wheel -q --wheel-dir wheelhouse '.[test]' 2>/dev/null
.venv/bin/pip download -q -d wheelhouse 'setuptools>=64' wheel 2>/dev/null
rm -f wheelhouse/lab-*.whl
base=$(.venv/bin/python -c 'from lab.images import ImageSet; from lab.dockerclient import docker_client; print(ImageSet(docker_client()).tag("base", build=False))')
tmp=$(docker create "$base" true)
trap 'docker rm "$tmp" >/dev/null' EXIT
docker export "$tmp" | docker import - lab-tool-root:local >/dev/null
docker build -q --network host --build-arg BASE=lab-tool-root:local --build-arg EXTRAS=test -t "$tag" .
rm -rf wheelhouse
echo "built $tag (FROM lab-tool-root:local, an import of $base)"
