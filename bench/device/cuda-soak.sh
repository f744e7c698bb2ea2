#!/usr/bin/env bash
# On the device machine, after cuda-native.sh: the soak run (docs/reliability.md) on the cuda backend —
# minutes of load with every fault on, replies counted, memory and native objects checked at the end.
# Usage: bash bench/device/cuda-soak.sh [MINUTES] [extra soak flags]
set -euo pipefail
minutes=${1:-3}
shift || true
[[ -d /tmp/jre ]] || tar xzf .device/jre.tgz -C /tmp
MPS_ACTORS_BACKEND=cuda /tmp/jre/bin/java -Dmps.native.library=/tmp/mps-cuda/lib/libmpsnative_cuda.so \
  -cp ".device/lib/*" dev.mpsactors.bench.Cli soak --minutes "$minutes" "$@"
