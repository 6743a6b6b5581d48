#!/usr/bin/env bash
# The main job: set up this machine, build berth, start a 3-server + 3-agent lab cluster in network namespaces,
# load the offline sample image, run the sample web app behind a NodePort and show which pods answer.
# `./target/debug/berthctl lab down --name demo` removes everything it made.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --workspace --bins
IMAGE_TAR=$(bash tests/images/build.sh | tail -1)
B=./target/debug/berthctl
$B lab down --name demo >/dev/null 2>&1 || true
$B lab up --name demo --servers 3 --agents 3
export KUBECONFIG=/var/lib/berth/labs/demo/kubeconfig
$B image load "$IMAGE_TAR"
$B apply -f manifests/web.yaml
$B rollout status deployment/web --timeout 120s
$B get pods -o wide
NODE_IPS=$($B get nodes -o jsonpath='{range .items[*]}{.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}')
echo "asking the NodePort of every node (the answer names the pod that served it):"
for ip in $NODE_IPS; do
  for i in 1 2; do
    printf '%s:30080 -> ' "$ip"; curl -s --max-time 2 "http://${ip}:30080/" || echo "(no answer)"
  done
done
API=$(grep -m1 'server: https://' "$KUBECONFIG" | awk '{print $2}')
printf 'the API without credentials (%s/api/v1/secrets): ' "$API"
curl -sk --max-time 3 -o /dev/null -w '%{http_code}\n' "$API/api/v1/secrets" || echo "(no answer)"
echo
echo "export KUBECONFIG=$KUBECONFIG   # TLS with an admin client certificate"
echo "then try: $B scale deploy/web --replicas 6; $B lab kill a1 --name demo; $B get pods -o wide -w"
echo "remove it all with: $B lab down --name demo"
