#!/usr/bin/env bash
# Installs every system package berth's build, tests, labs and benchmarks need (Debian).
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  protobuf-compiler build-essential pkg-config \
  crun runc busybox-static iproute2 nftables iptables containernetworking-plugins \
  etcd-server etcd-client umoci skopeo docker-registry python3 procps psmisc curl ca-certificates openssl \
  chromium chromium-driver >/dev/null
# Benchmarks compare with Docker (a private dockerd they start themselves): BERTH_BENCH=1 scripts/setup.sh
if [ "${BERTH_BENCH:-0}" = 1 ]; then
  $SUDO apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi
# Python client check in the API tests (optional: the test says why it skipped if this fails).
python3 -m pip install -q kubernetes 2>/dev/null || true
echo "setup: packages installed"
