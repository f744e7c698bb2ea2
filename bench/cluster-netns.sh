#!/usr/bin/env bash
# Requests/s of a cluster whose nodes are separate processes on separate addresses: each node is
# `bin/mps-actors node` in its own Linux network namespace, on a bridge this script creates, and
# `bin/mps-actors cluster-client` drives it from this machine's address on the bridge, checking every result
# against a local single-node run of the same model. Needs root and iproute2; everything it creates is
# removed on exit, whatever happens.
#
#   bench/cluster-netns.sh [NODES ...]          (default: 1 2 3)
# Environment: MODEL_DIR (models/tiny-bert), SECONDS_PER_RUN (10), WARMUP (3), CONCURRENCY (16), SEQ (32),
#              NODE_HEAP (256m).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cli="$root/bin/mps-actors"
model_dir="$(cd "${MODEL_DIR:-$root/models/tiny-bert}" && pwd)"
seconds="${SECONDS_PER_RUN:-10}"
warmup="${WARMUP:-3}"
concurrency="${CONCURRENCY:-16}"
seq="${SEQ:-32}"
heap="${NODE_HEAP:-256m}"
counts=("$@")
[[ ${#counts[@]} -gt 0 ]] || counts=(1 2 3)

tag="$(printf '%04x' $((RANDOM % 65536)))"
subnet="10.$((200 + RANDOM % 50)).$((RANDOM % 250))"
bridge="mpsb$tag"
logs="$(mktemp -d -t mps-cluster-netns-XXXXXX)"
pids=()
namespaces=()

cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  for ns in "${namespaces[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  ip link del "$bridge" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip link add "$bridge" type bridge
ip addr add "$subnet.1/24" dev "$bridge"
ip link set "$bridge" up
max=0
for n in "${counts[@]}"; do (( n > max )) && max=$n; done
for ((i = 0; i < max; i++)); do
  ns="mpsbench-$$-$tag-$i"
  ip netns add "$ns"
  namespaces+=("$ns")
  ip link add "mpsv$tag$i" type veth peer name eth0 netns "$ns"
  ip link set "mpsv$tag$i" master "$bridge" up
  ip netns exec "$ns" ip addr add "$subnet.$((i + 2))/24" dev eth0
  ip netns exec "$ns" ip link set eth0 up
  ip netns exec "$ns" ip link set lo up
done

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, model $model_dir, $concurrency client loops," \
     "$seq tokens a request, ${warmup}s warm-up + ${seconds}s measured; logs in $logs"
for n in "${counts[@]}"; do
  pids=()
  for ((i = 0; i < n; i++)); do
    MPS_ACTORS_JAVA_OPTS="-Xmx$heap -Dmps-actors.streams=1" ip netns exec "mpsbench-$$-$tag-$i" \
      "$cli" node --host "$subnet.$((i + 2))" --port 25520 --seeds "$subnet.2:25520" \
      --model "tiny=$model_dir" --replicas "$n" > "$logs/nodes$n-node$i.log" 2>&1 &
    pids+=($!)
    if (( i == 0 )); then
      for _ in $(seq 600); do grep -q "mps-actors node" "$logs/nodes$n-node0.log" && break; sleep 0.1; done
    fi
  done
  for ((i = 0; i < n; i++)); do
    for _ in $(seq 600); do grep -q "mps-actors node" "$logs/nodes$n-node$i.log" && break; sleep 0.1; done
  done
  echo "## $n node(s)"
  MPS_ACTORS_JAVA_OPTS="-Xmx512m -Dpekko.loglevel=WARNING" "$cli" cluster-client --seeds "$subnet.2:25520" \
    --host "$subnet.1" --model tiny --replicas "$n" --check "$model_dir" --seconds "$seconds" --warmup "$warmup" \
    --concurrency "$concurrency" --seq "$seq" 2>"$logs/client$n.err" | grep -v " s  sent " || true
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
done
