#!/usr/bin/env bash
# The soak run (docs/reliability.md; not part of CI): minutes of load on the embedded cpu runtime with every
# fault on, then the native tests under ASan+UBSan and TSan. Usage: bench/soak.sh [MINUTES] [extra soak flags]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-5}
shift || true
[[ -f bench/target/mps-actors-bench.jar ]] || ./mvnw -B -q package -DskipTests
echo "=== soak: $minutes minutes, faults on"
bin/mps-actors soak --minutes "$minutes" "$@"
echo "=== native runtime under sanitizers (ASan+UBSan, TSan)"
openblas=$PWD/native-mps/target/openblas/org/bytedeco/openblas/linux-x86_64
bash native-mps/src/test/native/run-sanitizers.sh true "$PWD/native-mps/src/main/native" "$PWD/native-mps/target" \
  "$openblas" 2>&1 | grep -E "===|passed|failed|ERROR|WARNING|Sanitizer"
