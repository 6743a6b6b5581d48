#!/usr/bin/env bash
# The test command: builds the workspace and runs every test, unit to end-to-end (needs root for containers
# and network namespaces; those tests say why they skip otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins
bash tests/images/build.sh >/dev/null 2>&1 || echo "test images: build script missing or failed"
cargo test --workspace --no-fail-fast -- --test-threads=2
