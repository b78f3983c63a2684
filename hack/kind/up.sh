#!/usr/bin/env bash
# Create a kind cluster, build and load the tessera-scheduler image, apply the
# manifests, and give the workers simulated GPUs (extended resources and GPU
# Feature Discovery labels; nothing can use them, but the scheduler places
# pods on them exactly as on real GPU nodes).
#
# Needs docker (with a running engine), kind and kubectl. It cannot run on
# Tessera's development and CI machines, which have no container engine; use
# `make demo` there.
#
# Usage: hack/kind/up.sh [base|default-scheduler]
set -euo pipefail
cd "$(dirname "$0")/../.."
variant="${1:-base}"
image="ghcr.io/tessera-sched/tessera-scheduler:latest"

for tool in docker kind kubectl; do
  command -v "$tool" >/dev/null || { echo "hack/kind/up.sh: $tool is required" >&2; exit 1; }
done

kind get clusters | grep -qx tessera || kind create cluster --config hack/kind/kind-config.yaml
docker build -t "$image" .
kind load docker-image --name tessera "$image"
kubectl apply -k "manifests/$variant"

proxy_pid=""
trap '[ -n "$proxy_pid" ] && kill "$proxy_pid"' EXIT
kubectl proxy --port=8011 >/dev/null & proxy_pid=$!
sleep 2
for node in $(kubectl get nodes -l '!node-role.kubernetes.io/control-plane' -o name); do
  name="${node#node/}"
  kubectl label --overwrite node "$name" nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3 nvidia.com/gpu.count=8
  curl -sS -X PATCH -H 'Content-Type: application/json-patch+json' \
    --data '[{"op":"add","path":"/status/capacity/nvidia.com~1gpu","value":"8"}]' \
    "http://127.0.0.1:8011/api/v1/nodes/$name/status" >/dev/null
done
kubectl -n tessera-system rollout status deployment/tessera-scheduler --timeout=120s
echo "Tessera is running. Pods opt in with spec.schedulerName: tessera-scheduler (see examples/)."
