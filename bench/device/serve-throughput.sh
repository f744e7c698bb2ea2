#!/usr/bin/env bash
# On the device machine, in ONE call: the HTTP overhead on the cuda backend. The cuda library is built
# (cuda-native.sh), a MiniLM-sized BERT is generated (hidden 384, 6 layers, vocab 30522) with the vocabulary
# tokenizer made here (.device/vocab-tokenizer.json), `serve` runs it in one JVM, and `stress --url` in
# another runs the in-process measurement on the same folder and then the same requests over HTTP
# (POST /v1/embeddings, token ids, the mean-pooled embedding), at each client count of CLIENTS.
#
# Here first: BUNDLE_FOR=cuda bench/device/prepare-bundle.sh, and the tokenizer:
#   VocabularyTokenizer.write(.device, 30522) then mv .device/tokenizer.json .device/vocab-tokenizer.json
# Then, as the device command (carry .device):   bash bench/device/serve-throughput.sh
# $OUT gets stress-http-<clients>.json and the logs.
set -uo pipefail
final=${OUT:-/tmp/mps-serve-out}
work=/tmp/mps-serve
rm -rf "$work" && mkdir -p "$work" "$final"
OUT=$work/native MPS_SKIP_SANITIZERS=1 bash bench/device/cuda-native.sh > "$work/native.log" 2>&1 \
  || { tail -30 "$work/native.log"; exit 1; }
grep -E "H[0-9]00|test_cuda:" "$work/native.log" | head -3
[[ -d /tmp/jre ]] || tar xzf .device/jre.tgz -C /tmp
java=/tmp/jre/bin/java
export JAVA_TOOL_OPTIONS="-Dmps.native.library=/tmp/mps-cuda/lib/libmpsnative_cuda.so"
export MPS_ACTORS_BACKEND=cuda
model=/tmp/models/minilm
"$java" -cp ".device/lib/*" dev.mpsactors.bench.Cli generate-model "$model" --hidden 384 --layers 6 --heads 12 \
    --intermediate 1536 --vocab 30522 --max-pos 512 --seed 17 > /dev/null 2>&1
cp .device/vocab-tokenizer.json "$model/tokenizer.json"
"$java" -cp ".device/lib/*" dev.mpsactors.bench.Cli serve --model minilm="$model" --port 8080 > "$work/serve.log" 2>&1 &
server=$!
for _ in $(seq 1 300); do grep -q "listening on" "$work/serve.log" && break; sleep 1; done
grep "listening on" "$work/serve.log" || { tail -30 "$work/serve.log"; kill "$server"; exit 1; }
for clients in ${CLIENTS:-64 256}; do
  "$java" -cp ".device/lib/*" dev.mpsactors.bench.Cli stress --url http://127.0.0.1:8080 --model "$model" \
      --clients "$clients" --seconds "${SECONDS_PER_RUN:-10}" --warmup 3 --compare none --gemm-seconds 0 \
      --outputs embedding:mean --json "$final/stress-http-$clients.json" > "$work/stress-$clients.log" 2>&1
  sed -n '/^stress:/,$p' "$work/stress-$clients.log"
done
curl -s 127.0.0.1:8080/metrics > "$final/metrics.txt" 2>/dev/null || true
kill "$server"; wait "$server"
cp "$work"/*.log "$final/" 2>/dev/null
