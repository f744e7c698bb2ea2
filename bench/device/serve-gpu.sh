#!/usr/bin/env bash
# On the device machine: `bin/mps-actors serve` on the GPU(s), as a user would run it. Builds the cuda backend,
# makes a MiniLM-shaped BERT folder with transformers (serve-gpu.py), then: the device rule (the default
# `mps-actors.devices = all` opens every GPU the driver reports, and asking for one more than there are is refused
# with a message), the TEI and OpenAI routes answered over HTTP, /embed's embeddings against transformers in
# float64, /metrics naming every device, and a short `stress --url` (HTTP against in-process on the same GPU).
# Needs .device (BUNDLE_FOR=serve bench/device/prepare-bundle.sh). Writes $OUT.
set -uo pipefail
out=${OUT:-/tmp/serve-gpu-out}
mkdir -p "$out"
[[ -d /tmp/jre || -n ${JAVA:-} ]] || tar xzf .device/jre.tgz -C /tmp
# A serve bundle carries its jars stored uncompressed in one xz archive (prepare-bundle.sh), to fit a device call.
if [[ -f .device/lib.tar.xz && ! -d .device/lib ]]; then tar xJf .device/lib.tar.xz -C .device; fi
java=/tmp/jre/bin/java
lib=/tmp/mps-cuda/lib/libmpsnative_cuda.so
status=0
# BACKEND=cpu GPUS=1 MODEL=DIR JAVA=java LIB=... try the script's flow on a machine without a GPU.
backend=${BACKEND:-cuda}
[[ -n ${JAVA:-} ]] && java=$JAVA
lib=${LIB-$lib}
gpus=${GPUS:-$(nvidia-smi -L | wc -l)}
echo "GPUs the driver reports: $gpus"; [[ $backend == cuda ]] && nvidia-smi -L

if [[ $backend == cuda && ! -f $lib ]]; then
  inc=$PWD/.device/jdk-include
  jvm=$(find /tmp/jre -name libjvm.so | head -1)
  cmake -S native-mps/src/main/native -B /tmp/mps-cuda/build -DCMAKE_BUILD_TYPE=Release -DMPS_BUILD_CPU=OFF \
    -DJAVA_INCLUDE_PATH="$inc" -DJAVA_INCLUDE_PATH2="$inc/linux" -DJAVA_AWT_INCLUDE_PATH="$inc" \
    -DJAVA_JVM_LIBRARY="$jvm" -DJAVA_AWT_LIBRARY="$jvm" -DMPS_JNI_HEADERS="$PWD/.device/generated-jni" \
    -DMPS_JNI_OUTPUT_DIR=/tmp/mps-cuda/lib > "$out/cmake.log" 2>&1 \
    && cmake --build /tmp/mps-cuda/build --target mpsnative_cuda --parallel "$(nproc)" >> "$out/cmake.log" 2>&1 \
    || { tail -30 "$out/cmake.log"; exit 1; }
fi
model=${MODEL:-/tmp/serve-gpu/minilm}
mkdir -p "$model" /tmp/serve-gpu
[[ -n ${MODEL:-} ]] || python3 bench/device/serve-gpu.py make "$model" .device/tokenizer.json > "$out/make.log" 2>&1 \
  || { tail -20 "$out/make.log"; exit 1; }

run() { MPS_ACTORS_BACKEND=$backend "$java" ${lib:+-Dmps.native.library=$lib} -cp "${CP:-.device/lib/*}" dev.mpsactors.bench.Cli "$@"; }

echo "=== one device more than the driver reports is refused"
MPS_ACTORS_DEVICES=$((gpus + 1)) timeout 60 env MPS_ACTORS_BACKEND=$backend "$java" ${lib:+-Dmps.native.library=$lib} \
  -cp "${CP:-.device/lib/*}" dev.mpsactors.bench.Cli serve --model minilm=$model --port 0 > "$out/too-many.log" 2>&1
echo "exit $? : $(head -c 400 "$out/too-many.log")"

echo "=== serve, devices = all (the default)"
run serve --model minilm=$model --port 0 > "$out/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
url=""
for _ in $(seq 360); do
  url=$(grep -o 'listening on http://[^ ]*' "$out/serve.log" | head -1 | sed 's/listening on //')
  [[ -n $url ]] && break
  kill -0 $server 2>/dev/null || break
  sleep 0.5
done
cat "$out/serve.log"
[[ -n $url ]] || { echo "the server did not come up"; exit 1; }
echo "url: $url"

cat > /tmp/serve-gpu/texts.json <<'JSON'
["What is Deep Learning?", "Pekko actors own the streams, the event pool, the kernel cache and the allocator.",
 "Une phrase en français, avec des accents : été, garçon.", "short", "GPU", "1234 5678 90",
 "The quick brown fox jumps over the lazy dog while the runtime batches sixty-four clients' requests at once.",
 "Emoji and symbols: ✓ → ∑ 😀"]
JSON
python3 -c "import json; print(json.dumps({'inputs': json.load(open('/tmp/serve-gpu/texts.json')), 'normalize': True}))" \
  > /tmp/serve-gpu/embed-body.json
for route in health info v1/models; do
  code=$(curl -s -o "$out/get-${route//\//-}.json" -w '%{http_code}' "$url/$route"); echo "GET /$route: $code"
  [[ $code == 200 ]] || status=1
done
code=$(curl -s -o "$out/embed.json" -w '%{http_code}' "$url/embed" -H 'Content-Type: application/json' \
  -d @/tmp/serve-gpu/embed-body.json); echo "POST /embed: $code"; [[ $code == 200 ]] || status=1
code=$(curl -s -o "$out/v1-embeddings.json" -w '%{http_code}' "$url/v1/embeddings" -H 'Content-Type: application/json' \
  -d '{"model": "minilm", "input": ["What is Deep Learning?", "Pekko"]}'); echo "POST /v1/embeddings (texts): $code"
[[ $code == 200 ]] || status=1
code=$(curl -s -o "$out/v1-embeddings-ids.json" -w '%{http_code}' "$url/v1/embeddings" -H 'Content-Type: application/json' \
  -d '{"model": "minilm", "input": [[101, 2054, 2003, 102]], "encoding_format": "base64"}'); echo "POST /v1/embeddings (token ids, base64): $code"
[[ $code == 200 ]] || status=1
code=$(curl -s -o "$out/bad.json" -w '%{http_code}' "$url/embed" -H 'Content-Type: application/json' -d '{"inputs": [1, {}]'); \
  echo "POST /embed, truncated JSON: $code $(head -c 200 "$out/bad.json")"
python3 bench/device/serve-gpu.py compare "$model" /tmp/serve-gpu/texts.json "$out/embed.json" "$out/embed-vs-hf.json" 1e-5 \
  || { echo "embeddings differ from transformers"; status=1; }

echo "=== stress --url (HTTP) against in-process, same GPU"
run stress --url "$url" --model "$model" --clients 64 --seconds 5 --warmup 1 --compare none --gemm-seconds 0 \
  --outputs embedding:mean:normalized --json "$out/stress-url.json" > "$out/stress-url.txt" 2>&1 || status=1
tail -25 "$out/stress-url.txt"
curl -s "$url/metrics" > "$out/metrics.txt"
echo "device labels in /metrics: $(grep -o 'device="[^"]*"' "$out/metrics.txt" | sort -u | tr '\n' ' ')"
devs=$(grep -o 'device="[^"]*"' "$out/metrics.txt" | sort -u | wc -l)
[[ $devs == "$gpus" ]] || { echo "expected $gpus devices in /metrics, saw $devs"; status=1; }
kill -TERM $server; wait $server; echo "server exit $?"; tail -3 "$out/serve.log"
exit $status
