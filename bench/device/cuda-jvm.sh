#!/usr/bin/env bash
# On the device machine, after cuda-native.sh built /tmp/mps-cuda/lib/libmpsnative_cuda.so: the JVM side
# of the cuda backend (docs/cuda.md). (1) the hazard, supervision and atomicity tests with backend = cuda;
# (2) Hugging Face BertModel float64 vs mps-actors on cuda in fp32 and fp16 GEMM math; (3) the stress
# benchmark on BERT-base shapes (hidden 768, 12 layers, seq 128, 256 clients of batch-1 requests) in fp32
# and fp16, and PyTorch on the same GPU and folder (gpu_peers.py). Needs .device (prepare-bundle.sh) and
# .device/test-lib (the test classes and JUnit, cuda-test-bundle.sh). Writes $OUT.
set -uo pipefail
out=${OUT:-/tmp/mps-cuda-out}
seconds=${SECONDS_PER_RUN:-15}
mkdir -p "$out"
[[ -d /tmp/jre ]] || tar xzf .device/jre.tgz -C /tmp
java=/tmp/jre/bin/java
export JAVA_TOOL_OPTIONS="-Dmps.native.library=/tmp/mps-cuda/lib/libmpsnative_cuda.so"
export MPS_ACTORS_BACKEND=cuda
status=0
step=${STEPS:-tests,numerics,stress,peers}

if [[ $step == *tests* ]]; then
  echo "=== JVM tests, backend = cuda"
  "$java" -cp ".device/lib/*:.device/test-lib/*" DeviceTests ${TESTS:-\
    dev.mpsactors.tests.KernelCacheStormTest dev.mpsactors.tests.EventStormTest dev.mpsactors.tests.NoDeadlockTest \
    dev.mpsactors.tests.SharedEncoderTest dev.mpsactors.tests.AllocatorNeverWaitsForUnrelatedWorkTest \
    dev.mpsactors.tests.ParallelLayerNormTest dev.mpsactors.tests.NonBlockingReleaseTest \
    dev.mpsactors.tests.SupervisionTest dev.mpsactors.tests.SubmissionAtomicityTest \
    dev.mpsactors.reliability.FaultInjectionTest dev.mpsactors.reliability.OverloadAndDeadlineTest \
    dev.mpsactors.reliability.ShutdownTest} \
    > "$out/jvm-tests.log" 2>&1 || status=1
  grep -E "^\[|tests (successful|failed)|faults Fault|flood:|deadlines:|shutdown mid" "$out/jvm-tests.log" \
    | grep -v "^\[SUCCESSFUL\]" | grep -v "^\[.*dispatcher" | head -60
  grep -c "^\[SUCCESSFUL\]" "$out/jvm-tests.log" | sed 's/^/successful tests: /'
fi

base=/tmp/models/base
if [[ $step == *numerics* || $step == *stress* || $step == *peers* ]]; then
  "$java" -cp ".device/lib/*" dev.mpsactors.bench.Cli generate-model "$base" --hidden 768 --layers 12 --heads 12 \
      --intermediate 3072 --vocab 30522 --max-pos 512 --seed 17 > /dev/null
fi

if [[ $step == *numerics* ]]; then
  python3 bench/device/hf_compare.py make-input /tmp/base-in.json 5 30522
  for math in ${NUMERICS:-fp32:1e-4 fp16:1e-2 bf16:1e-2 tf32:1e-2}; do
    m=${math%%:*}; limit=${math#*:}
    echo "=== numerics: cuda, gemm-math $m, vs Hugging Face float64 (limit $limit)"
    MPS_ACTORS_GEMM_MATH=$m "$java" -cp ".device/lib/*" dev.mpsactors.bench.Cli run --model "$base" \
        --input /tmp/base-in.json --output "/tmp/base-ours-$m.json" > "$out/run-$m.log" 2>&1 || { status=1; tail -5 "$out/run-$m.log"; }
    python3 bench/device/hf_compare.py compare "$base" /tmp/base-in.json "/tmp/base-ours-$m.json" \
        "$out/hf-compare-cuda-$m.json" "$limit" | grep rel_l2 || status=1
  done
fi

if [[ $step == *stress* ]]; then
  # streams x max-batch: many streams of small batches, or few streams of large ones
  for m in ${MATHS:-fp32 fp16}; do
    for shape in ${SHAPES:-16x32 4x64}; do
      streams=${shape%x*}; batch=${shape#*x}
      echo "=== stress: cuda, gemm-math $m, $streams streams, max-batch $batch, BERT-base seq 128, 256 clients"
      MPS_ACTORS_GEMM_MATH=$m MPS_ACTORS_STREAMS=$streams MPS_ACTORS_MAX_BATCH=$batch \
        "$java" -Xmx8g -cp ".device/lib/*" dev.mpsactors.bench.Cli stress --backend cuda --model "$base" --seq 128 \
          --clients 256 --seconds "$seconds" --compare none --gemm-seconds 0 \
          --json "$out/stress-cuda-$m-$shape.json" > "$out/stress-cuda-$m-$shape.txt" 2>&1 || status=1
      grep -A1 -E "^run " "$out/stress-cuda-$m-$shape.txt" | grep -v "^--"
    done
  done
fi

if [[ $step == *peers* ]]; then
  echo "=== PyTorch on the same GPU and folder"
  python3 bench/device/gpu_peers.py "$base" 5 "$out/gpu-peers.json" 2>&1 | grep -v Warning || status=1
fi
exit $status
