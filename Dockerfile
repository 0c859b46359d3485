# The lab tool itself in a container, for machines where you would rather not
# install it (and for CI's privileged-container job). It drives the host's
# kernel and Docker engine, so it runs privileged, with the host's PIDs (a
# container node's namespace is found at /proc/<its pid>) and the Docker socket:
#
#   docker build -t lab-tool .
#   docker run --rm -it --privileged --pid=host --network host \
#     -v /var/run/docker.sock:/var/run/docker.sock lab-tool up topologies/book-lan.yaml
#
# The lab's namespaces live in the tool container's mount namespace: run
# up, exec and down in one container (docker run ... bash, or docker exec into a
# long-lived one); see docs/CI.md.
#
# BASE: debian:bookworm-slim where a registry answers; offline, any local Debian
# 12 image, e.g. the project's own lab-base (lab images build) -- docs/CI.md.
# EXTRAS=test adds pytest and friends for running the test suite inside.
# A wheelhouse/ directory in the build context (pip wheel ... -w wheelhouse)
# makes the Python install offline.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
ARG EXTRAS=""
# LAB_STATE_DIR: the journals live in this container, not in the host's /run/lab. Containers that
# lab starts carry it as their lab.state label, so the host's `lab clean` leaves this container's
# labs alone (and the other way round).
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1 LAB_STATE_DIR=/run/lab-tool \
    PATH=/opt/lab/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# The machine tools lab drives (ip, iptables, tc, tcpdump, ethtool, nsenter), the
# Docker CLI for `lab exec` into container nodes, debootstrap for offline image builds.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv iproute2 iptables tcpdump ethtool \
      iputils-ping procps util-linux psmisc kmod ca-certificates docker.io debootstrap graphviz \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
WORKDIR /opt/lab/src
COPY . /opt/lab/src
# Editable, so a change to the source tree is live (the topologies and recipes are inside lab/); the exact versions tested
# (constraints.txt, also for the build backend through PIP_CONSTRAINT).
RUN python3 -m venv /opt/lab/venv \
 && if [ -d wheelhouse ]; then offline="--no-index --find-links /opt/lab/src/wheelhouse"; else offline=""; fi \
 && PIP_CONSTRAINT=/opt/lab/src/constraints.txt pip install --no-cache-dir $offline -e ".${EXTRAS:+[$EXTRAS]}" \
 && rm -rf wheelhouse \
 && lab --help >/dev/null
ENTRYPOINT ["lab"]
CMD ["--help"]
