#!/usr/bin/env bash
# Here, before cuda-jvm.sh: the tests module's test classes, JUnit's launcher and engine, and DeviceTests
# (a main that runs JUnit classes by name) into .device/test-lib, since the device has no Maven.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
./mvnw -B -q -o test-compile -pl tests -am -Dnative.sanitizers=false
rm -rf .device/test-lib && mkdir -p .device/test-lib
(cd tests/target/test-classes && zip -q -r ../../../.device/test-lib/mps-actors-tests.jar .)
# Test-scope jars the runtime bundle (.device/lib) does not already carry: JUnit, Pekko's testkits.
deps=$(mktemp -d)
./mvnw -B -q -o dependency:copy-dependencies -pl tests -DincludeScope=test -DoutputDirectory="$deps"
for jar in "$deps"/*.jar; do
  name=$(basename "$jar")
  case "$name" in mps-actors-*|openblas-*|jffi-*|jnr-*|asm-*|lmdbjava-*|jmh-*|jopt-*) continue ;; esac  # not used on the device
  [[ -e .device/lib/$name ]] || cp "$jar" .device/test-lib/
done
rm -rf "$deps"
launcher=$(ls ~/.m2/repository/org/junit/platform/junit-platform-launcher/*/junit-platform-launcher-*.jar | grep "/$(ls .device/test-lib | sed -n 's/junit-platform-engine-\(.*\)\.jar/\1/p')/" | head -1)
cp "$launcher" .device/test-lib/
tmp=$(mktemp -d)
javac -d "$tmp" -cp ".device/test-lib/*" bench/device/DeviceTests.java
(cd "$tmp" && zip -q -r "$OLDPWD/.device/test-lib/device-tests.jar" .)
rm -rf "$tmp"
ls .device/test-lib
