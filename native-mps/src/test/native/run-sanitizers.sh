#!/usr/bin/env bash
# Builds the native runtime and its tests twice more, with AddressSanitizer+UBSan and with
# ThreadSanitizer, and runs every native test under each. Called by Maven in the test phase.
#   run-sanitizers.sh <enabled:true|false> <native source dir> <target dir> <openblas dir>
set -euo pipefail
enabled=$1 src=$2 target=$3 openblas=$4
if [[ "$enabled" != "true" ]]; then
  echo "native sanitizer flavours skipped (-Dnative.sanitizers=$enabled)"
  exit 0
fi
jobs=$(nproc 2>/dev/null || echo 2)
for flavour in address thread; do
  dir="$target/cmake-$flavour"
  echo "=== native tests under sanitizer: $flavour ==="
  cmake -S "$src" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPS_SANITIZE="$flavour" -DMPS_BUILD_JNI=OFF -DMPS_BUILD_CUDA=OFF \
        -DMPS_OPENBLAS_DIR="$openblas" >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; exit 1; }
  cmake --build "$dir" --parallel "$jobs" >"$dir.build.log" 2>&1 || { cat "$dir.build.log"; exit 1; }
  if [[ "$flavour" == "thread" ]]; then
    # TSan's shadow memory needs the classic address layout; kernels with high mmap randomisation
    # break it ("unexpected memory mapping"), so run with randomisation off for this process only.
    setarch "$(uname -m)" -R ctest --test-dir "$dir" --output-on-failure
  else
    ctest --test-dir "$dir" --output-on-failure
  fi
done
