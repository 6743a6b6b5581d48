#!/bin/sh
# Builds the offline test image berth/busybox:latest from busybox-static, with no network.
# Usage: tests/images/build.sh [OUT_DIR]   (default: target/test-images)
# Writes OUT_DIR/busybox-oci.tar (OCI image layout), OUT_DIR/busybox-oci/ (the same layout unpacked)
# and OUT_DIR/busybox-docker.tar (`docker save` format), then prints their paths, one per line.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/../../target/test-images"}
mkdir -p "$out"
exec python3 "$here/build_image.py" --busybox "${BUSYBOX:-/bin/busybox}" --out "$out"
