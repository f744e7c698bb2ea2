#!/usr/bin/env bash
# On the device machine (docs/benchmarks.md "Peers"): one generated MiniLM-sized BERT folder, fp32,
# sequence 128, through mps-actors' cpu backend (the load test: 1 client, then 64 clients batched) and
# through PyTorch CPU/CUDA and ONNX Runtime CPU on the same cores. Needs .device (bench/device/prepare-bundle.sh).
set -euo pipefail
out=${OUT:-/tmp/peers}
seconds=${SECONDS_PER_RUN:-15}
mkdir -p "$out"
tar xzf .device/jre.tgz -C /tmp
java=/tmp/jre/bin/java
cp=".device/lib/*"
threads=$(nproc)
dir=/tmp/models/minilm
"$java" -cp "$cp" dev.mpsactors.bench.Cli generate-model "$dir" --hidden 384 --layers 6 --heads 12 \
    --intermediate 1536 --vocab 8192 --max-pos 512 --seed 17 > /dev/null
for clients in 1 64; do
  echo "== mps-actors cpu, $clients clients, $threads streams"
  MPS_ACTORS_STREAMS=$threads "$java" -cp "$cp" dev.mpsactors.bench.Cli load-test --model "$dir" \
      --clients "$clients" --seconds "$seconds" --seq 128 | tee "$out/mps-actors-$clients.txt" | tail -4
done
echo "== peers"
python3 bench/device/peers.py "$dir" "$threads" "$seconds" "$out/peers.json"
