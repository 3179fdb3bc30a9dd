"""Do two runs reach the same verdicts? Diffs generated/*/verdicts.json of two runs of the same config.

    python scripts/compare_runs.py results/run-a/generated results/run-b/generated [--same 0.95 --covered 0.90]

Every comparison (Verdict) present in both runs is matched by its key. Two shares: the verdict word is the same; one
run's interval covers the other run's estimate (either way round). Prints both, with the comparisons that changed
their word or where neither interval covers the other estimate; exit 1 when a share is below its threshold (issue 14:
at least 95 % the same word, at least 90 % covered), 2 when a folder holds no verdicts.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def load(generated: Path) -> dict[str, dict]:
    """Every verdict of a run's generated folder (one verdicts.json per study), by key."""
    found = {}
    for path in sorted(Path(generated).glob("*/verdicts.json")):
        for v in json.loads(path.read_text()):
            found[v["key"]] = v
    return found


def finite(v: dict) -> bool:
    return all(isinstance(v.get(x), (int, float)) and math.isfinite(v[x]) for x in ("lo", "hi", "estimate"))


def covers(v: dict, estimate: float) -> bool:
    return finite(v) and math.isfinite(estimate) and v["lo"] <= estimate <= v["hi"]


def compare(a: dict[str, dict], b: dict[str, dict]) -> dict:
    """Shares of the common keys with the same word and, among those with an estimate and interval in both runs
    (a verdict such as 'a size the grid did not try' has none), with an interval covering the other estimate; the
    keys that differ in each way; the keys only one run has."""
    common = sorted(set(a) & set(b))
    changed = [k for k in common if a[k]["word"] != b[k]["word"]]
    measured = [k for k in common if finite(a[k]) and finite(b[k])]
    apart = [k for k in measured if not (covers(a[k], b[k]["estimate"]) or covers(b[k], a[k]["estimate"]))]
    n, m = len(common), len(measured)
    return {"compared": n, "same": (n - len(changed)) / n if n else float("nan"),
            "covered": (m - len(apart)) / m if m else float("nan"), "changed": changed, "apart": apart,
            "only_first": sorted(set(a) - set(b)), "only_second": sorted(set(b) - set(a))}


def describe(v: dict) -> str:
    return f"{v['estimate']:.3g} [{v['lo']:.3g}, {v['hi']:.3g}] {v['word']!r}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path, help="the first run's generated folder")
    parser.add_argument("second", type=Path, help="the second run's generated folder")
    parser.add_argument("--same", type=float, default=0.95, help="least share with the same word (default 0.95)")
    parser.add_argument("--covered", type=float, default=0.90, help="least share covered (default 0.90)")
    args = parser.parse_args(argv)
    a, b = load(args.first), load(args.second)
    for folder, found in ((args.first, a), (args.second, b)):
        if not found:
            print(f"compare_runs: error: {folder}: no */verdicts.json with verdicts in it", file=sys.stderr)
            return 2
    result = compare(a, b)
    for key in result["changed"]:
        print(f"word changed: {key}: {describe(a[key])} -> {describe(b[key])}")
    for key in result["apart"]:
        print(f"not covered:  {key}: {describe(a[key])} vs {describe(b[key])}")
    if result["only_first"] or result["only_second"]:
        print(f"only in one run: {len(result['only_first'])} in the first, {len(result['only_second'])} in the second")
    print(f"{result['compared']} comparisons in both runs: same verdict in {100 * result['same']:.1f} % "
          f"(goal {100 * args.same:g} %), an interval covers the other estimate in {100 * result['covered']:.1f} % "
          f"(goal {100 * args.covered:g} %)")
    return 0 if result["same"] >= args.same and result["covered"] >= args.covered else 1


if __name__ == "__main__":
    sys.exit(main())
