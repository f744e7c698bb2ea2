#!/usr/bin/env bash
# On the device machine (CUDA toolkit with cuBLAS and NVRTC): builds the cuda backend (libmpsnative_cuda.so
# and test_cuda) with the project's CMake, runs the conformance test plain and under compute-sanitizer
# (memcheck, racecheck), and leaves the library in $OUT and /tmp/mps-cuda/lib for the JVM runs.
# Needs from here: .device/ (bench/device/prepare-bundle.sh: JRE, JNI headers, generated JNI headers).
set -euo pipefail
out=${OUT:-/tmp/mps-cuda-out}
mkdir -p "$out" /tmp/mps-cuda/lib
[[ -d /tmp/jre ]] || tar xzf .device/jre.tgz -C /tmp
inc=$PWD/.device/jdk-include
jvm=$(find /tmp/jre -name libjvm.so | head -1)
cmake -S native-mps/src/main/native -B /tmp/mps-cuda/build -DCMAKE_BUILD_TYPE=Release -DMPS_BUILD_CPU=OFF \
  -DJAVA_INCLUDE_PATH="$inc" -DJAVA_INCLUDE_PATH2="$inc/linux" -DJAVA_AWT_INCLUDE_PATH="$inc" \
  -DJAVA_JVM_LIBRARY="$jvm" -DJAVA_AWT_LIBRARY="$jvm" -DMPS_JNI_HEADERS="$PWD/.device/generated-jni" \
  -DMPS_JNI_OUTPUT_DIR=/tmp/mps-cuda/lib > "$out/cmake-configure.log" 2>&1 || { cat "$out/cmake-configure.log"; exit 1; }
grep "mps-actors" "$out/cmake-configure.log"
cmake --build /tmp/mps-cuda/build --parallel "$(nproc)" > "$out/cmake-build.log" 2>&1 || { tail -60 "$out/cmake-build.log"; exit 1; }
cp /tmp/mps-cuda/lib/libmpsnative_cuda.so "$out/"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
echo "=== test_cuda ==="
/tmp/mps-cuda/build/tests/test_cuda 2>&1 | tee "$out/test_cuda.log"
if [[ "${MPS_SKIP_SANITIZERS:-0}" != 1 ]]; then
  for tool in memcheck racecheck; do
    echo "=== compute-sanitizer --tool $tool ==="
    MPS_TEST_LIGHT=1 compute-sanitizer --tool "$tool" --error-exitcode 3 /tmp/mps-cuda/build/tests/test_cuda > "$out/sanitizer-$tool.log" 2>&1 \
      && echo "$tool: clean" || { echo "$tool: FAILED"; tail -40 "$out/sanitizer-$tool.log"; exit 3; }
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test_cuda:" "$out/sanitizer-$tool.log" || true
  done
fi
