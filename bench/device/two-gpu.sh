#!/usr/bin/env bash
# On a device machine with two GPUs (it also runs on one, and then says that only one device exists), in ONE
# call: the cuda backend built; its conformance test (test_cuda) on each GPU at once; then one generated
# BERT-base folder (hidden 768, 12 layers, vocab 30522), fp16, served to 512 closed-loop clients sending batch-1
# requests for the pooled, normalized sentence embedding (mean over 128 tokens):
#   one      mps-actors.devices = 1   (one GPU)
#   all      mps-actors.devices = all (the model replicated on every GPU, least-loaded routing)
#   crash    all, with device 1's runtime crashed halfway through the measured window (fault injection): every
#            request must be answered, the survivor carries the load, the device and its replica come back.
# Reported (and written to $OUT/two-gpu.json): requests/s, p99, the scaling ratio all / one (the target on two
# GPUs is 1.9x or more), each device's stream utilisation and requests served, lost requests, restarts.
#
# Here first: BUNDLE_FOR=cuda bench/device/prepare-bundle.sh (.device: JRE, jars, JNI headers). Then, as the
# device command (carry .device, kind nvidia-h200-x2):   bash bench/device/two-gpu.sh
# Knobs: SECONDS_PER_RUN (15), CLIENTS (512), SHAPE (STREAMSxMAX_BATCH per device, 4x128), CONFORMANCE (1).
set -uo pipefail
final=${OUT:-/tmp/mps-two-gpu-out}
work=/tmp/mps-two-gpu
rm -rf "$work" && mkdir -p "$work" "$final"
seconds=${SECONDS_PER_RUN:-15}
clients=${CLIENTS:-512}
shape=${SHAPE:-4x128}
streams=${shape%x*}; batch=${shape#*x}
status=0

echo "=== build (cuda-native.sh, conformance on the first GPU)"
OUT=$work/native MPS_SKIP_SANITIZERS=1 bash bench/device/cuda-native.sh > "$work/native.log" 2>&1 || status=1
grep -E "mps-actors:|test_cuda:|FAIL" "$work/native.log" | grep -v "^PASS" | head -10
gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
nvidia-smi -L
echo "GPUs on this host: $gpus"

if [[ ${CONFORMANCE:-1} == 1 && $gpus -ge 2 ]]; then
  echo "=== test_cuda on every GPU at once"
  pids=()
  for ((g = 0; g < gpus; g++)); do
    CUDA_VISIBLE_DEVICES=$g /tmp/mps-cuda/build/tests/test_cuda > "$work/test_cuda-gpu$g.log" 2>&1 &
    pids+=($!)
  done
  for ((g = 0; g < gpus; g++)); do
    wait "${pids[$g]}" || status=1
    echo "GPU $g: $(grep -E "^test_cuda:" "$work/test_cuda-gpu$g.log" || echo "no summary (see test_cuda-gpu$g.log)")"
  done
fi

[[ -d /tmp/jre ]] || tar xzf .device/jre.tgz -C /tmp
java=/tmp/jre/bin/java
export JAVA_TOOL_OPTIONS="-Dmps.native.library=/tmp/mps-cuda/lib/libmpsnative_cuda.so"
export MPS_ACTORS_BACKEND=cuda MPS_ACTORS_GEMM_MATH=fp16 MPS_ACTORS_STREAMS=$streams MPS_ACTORS_MAX_BATCH=$batch
base=/tmp/models/base
"$java" -cp ".device/lib/*" dev.mpsactors.bench.Cli generate-model "$base" --hidden 768 --layers 12 --heads 12 \
    --intermediate 3072 --vocab 30522 --max-pos 512 --seed 17 > /dev/null 2>&1 || status=1

# How many devices the runtime sees (mps_device_count: cudaGetDeviceCount), one line per device.
"$java" -cp ".device/lib/*" dev.mpsactors.bench.Cli info --backend cuda > "$work/info.txt" 2>&1 || status=1
devices=$(grep -c "^device: " "$work/info.txt")
grep -E "^devices?: " "$work/info.txt"
echo "devices the runtime uses by default (mps-actors.devices = all): $devices"

stress() { # name devices [extra stress options...]
  local name=$1 devs=$2; shift 2
  echo "=== $name: mps-actors.devices = $devs, $clients clients, $streams streams x max-batch $batch per device"
  MPS_ACTORS_DEVICES=$devs "$java" -Xmx24g -cp ".device/lib/*" dev.mpsactors.bench.Cli stress --backend cuda \
      --model "$base" --seq 128 --clients "$clients" --seconds "$seconds" --compare none --gemm-seconds 0 \
      --outputs embedding:mean:normalized --json "$work/stress-$name.json" "$@" > "$work/stress-$name.txt" 2>&1 \
    || status=1
  grep -E "^run |^mps-actors " "$work/stress-$name.txt" || tail -5 "$work/stress-$name.txt"
}

stress one 1
if [[ $devices -ge 2 ]]; then
  stress all all
  stress crash all --crash-device 1
else
  echo "only one device exists on this host: the runs over several devices and the crash of device 1 are skipped"
fi

python3 - "$work" "$final/two-gpu.json" "$devices" "$gpus" <<'PY'
import json, os, sys
work, target, devices, gpus = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def run(name):
    path = os.path.join(work, f"stress-{name}.json")
    if not os.path.exists(path):
        return None
    m = json.load(open(path))["points"][0]["measurements"][0]
    return {k: m.get(k) for k in ("requestsPerSecond", "p50Ms", "p99Ms", "sent", "succeeded", "failed", "lost",
                                   "streamUtilisation", "devices")}
out = {"gpus": gpus, "devices": devices, "one": run("one"), "all": run("all"), "crash": run("crash")}
if out["one"] and out["all"]:
    out["scaling"] = round(out["all"]["requestsPerSecond"] / max(1e-9, out["one"]["requestsPerSecond"]), 3)
if devices < 2:
    out["note"] = "only one device exists on this host: one GPU measured, nothing to scale over"
json.dump(out, open(target, "w"), indent=1)
for name in ("one", "all", "crash"):
    r = out[name]
    if r:
        per = ", ".join(f"device {d['ordinal']} {100 * d['utilisation']:.0f}% / {d['served']} served"
                        + (f" / {d['restarts']} restart(s)" if d['restarts'] else "") for d in (r["devices"] or []))
        print(f"{name:6s} {r['requestsPerSecond']:9.1f} req/s  p99 {r['p99Ms']:7.1f} ms  sent {r['sent']}  "
              f"failed {r['failed']}  lost {r['lost']}  [{per}]")
if "scaling" in out:
    print(f"scaling all / one: {out['scaling']:.2f}x over {devices} devices")
if "note" in out:
    print(out["note"])
PY
tar czf "$final/two-gpu-logs.tgz" -C "$work" --exclude='*.so' . 2>/dev/null
exit $status
