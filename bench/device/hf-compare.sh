#!/usr/bin/env bash
# Runs on the device machine (see docs/inference.md): mps-actors' cpu backend against Hugging Face
# transformers.BertModel in float64 on the same generated BERT folders and ragged inputs.
# Needs .device/jre.tgz and .device/lib/*.jar (bench/device/prepare-bundle.sh makes them); writes $OUT.
set -euo pipefail
out=${OUT:-/tmp/hf-compare}
mkdir -p "$out"
tar xzf .device/jre.tgz -C /tmp
java=/tmp/jre/bin/java
cp=".device/lib/*"
status=0
for spec in "small:--hidden 48 --layers 2 --heads 4 --intermediate 96 --vocab 500 --max-pos 128" \
            "minilm:--hidden 384 --layers 6 --heads 12 --intermediate 1536 --vocab 2000 --max-pos 512"; do
  name=${spec%%:*}; flags=${spec#*:}
  dir=/tmp/models/$name
  "$java" -cp "$cp" dev.mpsactors.bench.Cli generate-model "$dir" $flags --seed 17 > /dev/null
  vocab=$(python3 -c "import json;print(json.load(open('$dir/config.json'))['vocab_size'])")
  python3 bench/device/hf_compare.py make-input "/tmp/$name-in.json" 5 "$vocab"
  "$java" -cp "$cp" dev.mpsactors.bench.Cli run --model "$dir" --input "/tmp/$name-in.json" --output "/tmp/$name-ours.json"
  echo "== $name"
  python3 bench/device/hf_compare.py compare "$dir" "/tmp/$name-in.json" "/tmp/$name-ours.json" "$out/hf-compare-$name.json" || status=1
done
exit $status
