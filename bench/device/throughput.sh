#!/usr/bin/env bash
# On the device machine, in ONE call: the cuda backend built and checked (cuda-native.sh: test_cuda; the
# conformance suite over the C ABI in each math mode; both under compute-sanitizer), numerics against
# Hugging Face float64, then mps-actors and the PyTorch peer (torch_peer.py) on the same generated BERT-base folder (hidden 768, 12 layers, vocab 30522): 256 clients
# sending batch-1 requests for the pooled, normalized sentence embedding (mean over the tokens), which both
# deliver to host memory; every sequence 128 tokens, and lengths uniform in 8..128; fp16 (16-bit storage) and
# fp32 (no TF32). Last, Nsight Compute's kernel times for one 128 x 128 fp16 batch (`bin/mps-actors run`).
#
# Here first: BUNDLE_FOR=cuda bench/device/prepare-bundle.sh (.device: JRE, jars, JNI headers). Then, as the device command
# (carry .device):   bash bench/device/throughput.sh
# $OUT gets throughput.json (every figure of the call), ncu-summary.txt and throughput-logs.tgz (all logs).
# Knobs: SECONDS_PER_RUN (12), PEER_SECONDS (3), RUNS, PEER_DTYPES (fp16,fp32), SANITIZER (memcheck; a list
# such as "memcheck racecheck" runs each; none skips), PROFILE (1), NUMERICS (1), NUMERICS_SPECS ("fp32:1e-5
# fp16:1e-2": the math modes compared with Hugging Face, each with its limit), PEER (1; 0 skips the PyTorch peer).
set -uo pipefail
final=${OUT:-/tmp/mps-throughput-out}
work=/tmp/mps-throughput
rm -rf "$work" && mkdir -p "$work" "$final"
seconds=${SECONDS_PER_RUN:-12}
status=0

echo "=== build and conformance (cuda-native.sh)"
if [[ ${SANITIZER:-memcheck} == none ]]; then skip=1; else skip=0; fi
OUT=$work/native MPS_SKIP_SANITIZERS=1 bash bench/device/cuda-native.sh > "$work/native.log" 2>&1 || status=1
grep -E "mps-actors:|H[0-9]00|test_cuda:|FAIL" "$work/native.log" | grep -v "^PASS" | head -20
if [[ $skip == 0 ]]; then
  for tool in ${SANITIZER:-memcheck}; do
    MPS_TEST_LIGHT=1 compute-sanitizer --tool "$tool" --error-exitcode 3 /tmp/mps-cuda/build/tests/test_cuda \
      > "$work/sanitizer-$tool.log" 2>&1 && echo "$tool: clean" || { echo "$tool: FAILED"; status=1; }
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test_cuda:" "$work/sanitizer-$tool.log"
  done
fi

echo "=== conformance suite over the C ABI (conformance.c), backend cuda, each math mode"
conf=/tmp/mps-cuda/build/tests/conformance_cuda
for m in fp32 tf32 fp16 bf16; do
  "$conf" cuda "$m" > "$work/conformance-$m.log" 2>&1 || { status=1; grep FAIL "$work/conformance-$m.log" | head -5; }
  tail -1 "$work/conformance-$m.log"
done
if [[ $skip == 0 ]]; then
  for tool in ${SANITIZER:-memcheck}; do
    for m in fp32 fp16; do
      MPS_TEST_LIGHT=1 compute-sanitizer --tool "$tool" --error-exitcode 3 "$conf" cuda "$m" > "$work/conformance-$tool-$m.log" 2>&1 \
        && echo "conformance $m under $tool: clean" || { echo "conformance $m under $tool: FAILED"; status=1; }
      grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$work/conformance-$tool-$m.log"
    done
  done
fi

[[ -d /tmp/jre ]] || tar xzf .device/jre.tgz -C /tmp
java=/tmp/jre/bin/java
export JAVA_TOOL_OPTIONS="-Dmps.native.library=/tmp/mps-cuda/lib/libmpsnative_cuda.so"
export MPS_ACTORS_BACKEND=cuda
base=/tmp/models/base
"$java" -cp ".device/lib/*" dev.mpsactors.bench.Cli generate-model "$base" --hidden 768 --layers 12 --heads 12 \
    --intermediate 3072 --vocab 30522 --max-pos 512 --seed 17 > /dev/null 2>&1
outputs=${OUTPUTS:-embedding:mean:normalized}

if [[ ${NUMERICS:-1} == 1 ]]; then
  python3 bench/device/hf_compare.py make-input "$work/in.json" 5 30522
  for spec in ${NUMERICS_SPECS:-fp32:1e-5 fp16:1e-2}; do
    m=${spec%%:*}; limit=${spec#*:}
    echo "=== numerics: gemm-math $m vs Hugging Face float64 (limit $limit)"
    MPS_ACTORS_GEMM_MATH=$m "$java" -cp ".device/lib/*" dev.mpsactors.bench.Cli run --model "$base" --input "$work/in.json" \
        --outputs "last_hidden_state,pooler_output,$outputs" --output "$work/ours-$m.json" > "$work/run-$m.log" 2>&1 \
      || { status=1; tail -3 "$work/run-$m.log"; }
    python3 bench/device/hf_compare.py compare "$base" "$work/in.json" "$work/ours-$m.json" "$work/hf-compare-$m.json" \
        "$limit" 2>/dev/null | grep rel_l2 || status=1
  done
fi

# name:math:STREAMSxMAX_BATCH:lengths (empty: every sequence 128 tokens)[:JVM options, comma-separated]. The
# mixed-length runs also try coarser length buckets (fewer, fuller batches against more padding).
for run in ${RUNS:-fp16-fixed:fp16:4x128: fp16-fixed-8x64:fp16:8x64: fp16-mixed:fp16:4x128:8..128 \
                   fp16-mixed-bucket32:fp16:4x128:8..128:-Dmps-actors.model.seq-bucket=32 \
                   fp16-mixed-bucket64:fp16:4x128:8..128:-Dmps-actors.model.seq-bucket=64 \
                   fp32-fixed:fp32:8x64: fp32-mixed:fp32:8x64:8..128}; do
  IFS=: read -r name math shape lengths jvm <<< "$run"
  streams=${shape%x*}; batch=${shape#*x}
  extra=(--seq 128)
  [[ -n $lengths ]] && extra=(--lengths "$lengths")
  IFS=, read -r -a jvm_opts <<< "${jvm:-}"
  echo "=== mps-actors $name: gemm-math $math, $streams streams x max-batch $batch${lengths:+, lengths $lengths} ${jvm:-}"
  MPS_ACTORS_GEMM_MATH=$math MPS_ACTORS_STREAMS=$streams MPS_ACTORS_MAX_BATCH=$batch \
    "$java" -Xmx16g "${jvm_opts[@]}" -cp ".device/lib/*" dev.mpsactors.bench.Cli stress --backend cuda --model "$base" "${extra[@]}" \
      --clients 256 --seconds "$seconds" --compare none --gemm-seconds 0 --outputs "$outputs" \
      --json "$work/stress-$name.json" > "$work/stress-$name.txt" 2>&1 || status=1
  grep -A1 -E "^run " "$work/stress-$name.txt" | grep -v "^--" || tail -3 "$work/stress-$name.txt"
done

if [[ ${PEER:-1} == 1 ]]; then
  echo "=== PyTorch peer (torch_peer.py), same folder, same GPU"
  python3 bench/device/torch_peer.py "$base" "${PEER_SECONDS:-3}" "$work/torch-peer.json" "${PEER_DTYPES:-fp16,fp32}" \
    > "$work/torch-peer.log" 2>&1 || status=1
  grep "^{'peer'" "$work/torch-peer.log"
fi

summarize() {
python3 - "$work" "$final/throughput.json" <<'PY'
import glob, json, os, sys
work, target = sys.argv[1], sys.argv[2]
def load(path):
    return json.load(open(path)) if os.path.exists(path) else None
ours = {os.path.basename(f)[len("stress-"):-len(".json")]: load(f) for f in sorted(glob.glob(os.path.join(work, "stress-*.json")))}
numerics = {m: load(os.path.join(work, f"hf-compare-{m}.json")) for m in ("fp32", "fp16")}
json.dump({"mps_actors": ours, "torch_peer": load(os.path.join(work, "torch-peer.json")), "numerics": numerics},
          open(target, "w"), indent=1)
PY
tar czf "$final/throughput-logs.tgz" -C "$work" --exclude='*.so' --exclude=batch128-out.json --exclude='ours-*.json' . 2>/dev/null
}
summarize  # before the profile, so a run cut short still brings its figures back

if [[ ${PROFILE:-1} == 1 ]] && command -v ncu > /dev/null; then
  echo "=== Nsight Compute: one 128 x 128 fp16 batch"
  python3 -c "import json, random; random.seed(3); json.dump({'input_ids': [[random.randrange(30522) for _ in range(128)] for _ in range(128)]}, open('$work/batch128.json', 'w'))"
  MPS_ACTORS_GEMM_MATH=fp16 MPS_ACTORS_STREAMS=1 MPS_ACTORS_MAX_BATCH=128 timeout "${NCU_TIMEOUT:-150}" ncu --clock-control none \
      --metrics gpu__time_duration.sum --csv "$java" -cp ".device/lib/*" dev.mpsactors.bench.Cli run --model "$base" \
      --input "$work/batch128.json" --output "$work/batch128-out.json" --outputs "$outputs" > "$work/ncu.csv" \
      2> "$work/ncu.err" || { echo "ncu failed"; tail -3 "$work/ncu.err"; }
  python3 bench/device/ncu_summary.py "$work/ncu.csv" > "$final/ncu-summary.txt" && cat "$final/ncu-summary.txt"
fi

summarize
exit $status
