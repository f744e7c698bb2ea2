#!/usr/bin/env bash
# On the device machine: every supported family (BERT gelu/gelu_new/relu, RoBERTa, XLM-RoBERTa, DistilBERT, MPNet,
# with and without sequence-classification heads) made by transformers' own config classes, run by mps-actors on
# cpu fp32, cuda fp32 and cuda fp16, against transformers in float64 (relative L2 per family and mode, one JSON and
# a table); then the tokenizer: mps-actors' ids against Python tokenizers on the same tokenizer.json for 1,200
# varied sentences. Needs .device (bench/device/prepare-bundle.sh). Builds libmpsnative_cuda.so when
# /tmp/mps-cuda/lib lacks it. MODES picks the runs (default "cpu-fp32 cuda-fp32 cuda-fp16"). Writes $OUT.
set -uo pipefail
out=${OUT:-/tmp/families-out}
root=/tmp/families
mkdir -p "$out" "$root"
[[ -d /tmp/jre ]] || tar xzf .device/jre.tgz -C /tmp
java=/tmp/jre/bin/java
cp=".device/lib/*"
modes=${MODES-cpu-fp32 cuda-fp32 cuda-fp16}
status=0

python3 bench/device/families.py make "$root" > "$out/make.log" 2>&1 || { tail -20 "$out/make.log"; exit 1; }
# The folders, inputs and transformers' float64 outputs travel back, so a backend this bundle does not carry (the
# cpu backend's OpenBLAS is left out of a cuda bundle) is compared elsewhere: families.py compare-json.
python3 bench/device/families.py reference "$root" >> "$out/make.log" 2>&1 || status=1
(cd "$root" && tar czf "$out/families-root.tgz" cases.json hf ./*-in.json \
  $(python3 -c "import json; print(' '.join(c['name'] for c in json.load(open('cases.json'))))"))

if [[ $modes == *cuda* && ! -f /tmp/mps-cuda/lib/libmpsnative_cuda.so ]]; then
  inc=$PWD/.device/jdk-include
  jvm=$(find /tmp/jre -name libjvm.so | head -1)
  cmake -S native-mps/src/main/native -B /tmp/mps-cuda/build -DCMAKE_BUILD_TYPE=Release -DMPS_BUILD_CPU=OFF \
    -DJAVA_INCLUDE_PATH="$inc" -DJAVA_INCLUDE_PATH2="$inc/linux" -DJAVA_AWT_INCLUDE_PATH="$inc" \
    -DJAVA_JVM_LIBRARY="$jvm" -DJAVA_AWT_LIBRARY="$jvm" -DMPS_JNI_HEADERS="$PWD/.device/generated-jni" \
    -DMPS_JNI_OUTPUT_DIR=/tmp/mps-cuda/lib > "$out/cmake.log" 2>&1 \
    && cmake --build /tmp/mps-cuda/build --target mpsnative_cuda --parallel "$(nproc)" >> "$out/cmake.log" 2>&1 \
    || { tail -30 "$out/cmake.log"; status=1; }
fi

reports=()
for mode in $modes; do
  ours=$root/ours-$mode
  mkdir -p "$ours"
  opts=() env=()
  case $mode in
    cpu-*) env=(MPS_ACTORS_BACKEND=cpu) ;;
    cuda-*) opts=(-Dmps.native.library=/tmp/mps-cuda/lib/libmpsnative_cuda.so)
            env=(MPS_ACTORS_BACKEND=cuda MPS_ACTORS_GEMM_MATH=${mode#cuda-}) ;;
  esac
  # one JVM per mode runs every folder (FamilyRuns: Cli run's steps, one runtime)
  env "${env[@]}" "$java" "${opts[@]}" -cp "$cp" dev.mpsactors.bench.FamilyRuns "$root" "$ours" \
      > "$out/run-$mode.log" 2>&1 || { echo "$mode: some case failed"; grep FAILED "$out/run-$mode.log"; status=1; }
  python3 bench/device/families.py compare "$root" "$mode" "$ours" "$out/families-$mode.json" || status=1
  reports+=("$out/families-$mode.json")
done
if (( ${#reports[@]} )); then
  python3 bench/device/families.py table "${reports[@]}" | tee "$out/families-table.md"
  python3 - "$out/families.json" "${reports[@]}" <<'EOF'
import json, sys
json.dump({json.load(open(p))["mode"]: json.load(open(p)) for p in sys.argv[2:]}, open(sys.argv[1], "w"), indent=2)
EOF
fi

echo "=== tokenizer: mps-actors vs Python tokenizers"
tok=$root/tokenizer
mkdir -p "$tok"
cp .device/tokenizer.json "$tok/tokenizer.json"  # all-MiniLM-L6-v2's (prepare-bundle.sh)
python3 bench/device/families.py sentences "$root/sentences.jsonl" 1200
"$java" -cp "$cp" dev.mpsactors.bench.TokenizeDump "$tok" 256 "$root/sentences.jsonl" "$root/ours-tokens.jsonl" \
  || status=1
python3 bench/device/families.py tokens "$tok/tokenizer.json" 256 "$root/sentences.jsonl" "$root/ours-tokens.jsonl" \
  "$out/tokenizer-check.json" || status=1
exit $status
