#!/usr/bin/env bash
# Install what lab needs on a Debian/Ubuntu machine, as root, and make ./.venv.
# Idempotent: a second run installs nothing new. Uses a running Docker engine
# when there is one; installs (docker.io) and starts one when there is none.
set -euo pipefail
cd "$(dirname "$0")/.."

need_root() { [ "$(id -u)" = 0 ] || { echo "setup: run as root (as root: bash $0; or sudo bash $0)" >&2; exit 3; }; }
need_root

PKGS=(python3 python3-venv python3-pip iproute2 iptables tcpdump iputils-ping ethtool bind9-host dnsutils
      netbase inetutils-telnet netcat-openbsd wget curl procps psmisc debootstrap graphviz iperf ca-certificates radvd openssl
      gcc g++ libc6-dev strace lsof net-tools ifstat sysstat)  # compilers: --use, lab grade; strace…: ch.9+
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if ! command -v dockerd >/dev/null 2>&1 && ! docker info >/dev/null 2>&1; then missing+=(docker.io); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A Docker engine: use the running one, else start one and wait for it.
if ! docker info >/dev/null 2>&1 && pgrep -x dockerd >/dev/null 2>&1; then
  echo "setup: a dockerd is starting or stopping; waiting for it"
  for _ in $(seq 1 30); do docker info >/dev/null 2>&1 && break; pgrep -x dockerd >/dev/null 2>&1 || break; sleep 1; done
fi
if ! docker info >/dev/null 2>&1; then
  if command -v systemctl >/dev/null 2>&1 && systemctl start docker 2>/dev/null && docker info >/dev/null 2>&1; then
    :
  else
    echo "setup: starting dockerd (log: /var/log/lab-dockerd.log)"
    # its own session: a signal to the caller's process group (Ctrl-C, a CI job ending) must not stop it
    setsid nohup dockerd >/var/log/lab-dockerd.log 2>&1 < /dev/null &
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start; see /var/log/lab-dockerd.log" >&2; exit 3; }
  fi
fi

# Debian's docker-registry binary, for `lab cluster local up --registry` (the tests use it): unpacked
# into .cache/, not installed, so that no registry service is started on this machine.
if ! command -v docker-registry >/dev/null 2>&1 && [ ! -x .cache/registry/usr/bin/docker-registry ]; then
  rm -rf .cache/registry-deb && mkdir -p .cache/registry-deb
  if (cd .cache/registry-deb && { apt-get download docker-registry >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get download docker-registry >/dev/null 2>&1; }; }); then
    dpkg-deb -x .cache/registry-deb/docker-registry_*.deb .cache/registry
  else
    echo "setup: note: no docker-registry package here; lab cluster local up --registry will say so" >&2
  fi
  rm -rf .cache/registry-deb
fi

# Debian's sshd (with the libwrap it links), for the tests of ssh:// engines, which give each
# simulated machine an sshd of its own: unpacked into .cache/sshd, not installed, so that no ssh
# service starts on this machine.
if [ ! -x .cache/sshd/usr/sbin/sshd ]; then
  rm -rf .cache/sshd-deb .cache/sshd && mkdir -p .cache/sshd-deb
  if (cd .cache/sshd-deb && { apt-get download openssh-server libwrap0 >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get download openssh-server libwrap0 >/dev/null 2>&1; }; }); then
    for deb in .cache/sshd-deb/*.deb; do dpkg-deb -x "$deb" .cache/sshd; done
  else
    echo "setup: note: no openssh-server package here; the tests of ssh:// engines will say so" >&2
  fi
  rm -rf .cache/sshd-deb
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
# The exact versions tested (constraints.txt, refreshed by scripts/lock.sh); as PIP_CONSTRAINT it also
# pins the build backend in pip's build environment. LAB_DEPS=newest takes the newest versions that
# pyproject.toml allows instead (the scheduled job of .github/workflows/drift.yml).
if [ "${LAB_DEPS:-locked}" = newest ]; then
  echo "setup: LAB_DEPS=newest: the newest versions pyproject.toml allows, not constraints.txt"
  PIP_CONSTRAINT="" .venv/bin/pip install -q --disable-pip-version-check --upgrade --upgrade-strategy eager -e '.[test]'
else
  PIP_CONSTRAINT="$PWD/constraints.txt" .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
fi
.venv/bin/lab --help >/dev/null
echo "setup: ok (.venv/bin/lab is installed)"
