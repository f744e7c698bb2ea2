"""Sums Nsight Compute's `--metrics gpu__time_duration.sum --csv` output per kernel name: calls, mean and
total device time, largest first. Usage: ncu_summary.py NCU.csv"""
import csv, collections, sys

rows = [l for l in open(sys.argv[1]) if l.startswith('"')]
per = collections.defaultdict(list)
for r in csv.DictReader(rows):
    if r.get("Metric Name") != "gpu__time_duration.sum":
        continue
    v = float(r["Metric Value"].replace(",", ""))
    unit = r.get("Metric Unit", "ns")
    us = v / 1000 if unit in ("ns", "nsecond") else v * 1000 if unit in ("ms", "msecond") else v
    name = r["Kernel Name"].split("(")[0]
    per[name].append(us)
total = sum(sum(v) for v in per.values())
print(f"{'kernel':60s} {'calls':>6s} {'mean us':>9s} {'total ms':>9s} {'share':>6s}")
for name, v in sorted(per.items(), key=lambda kv: -sum(kv[1])):
    print(f"{name[:60]:60s} {len(v):6d} {sum(v) / len(v):9.1f} {sum(v) / 1000:9.3f} {sum(v) / total:6.1%}")
print(f"{'total':60s} {sum(len(v) for v in per.values()):6d} {'':9s} {total / 1000:9.3f}")
