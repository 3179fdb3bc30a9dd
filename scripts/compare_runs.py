"""Can a rerun contradict a verdict? Diffs generated/*/verdicts.json of two runs of the same config.

    python scripts/compare_runs.py results/run-a/generated results/run-b/generated [--same 0.90 --decided 0.70]

Every comparison (Verdict) present in both runs is matched by its key and judged by its outcome (stats.Outcome), never
its words; a verdict that repeats another under a headline's key (copy_of) is the same comparison and counts once. A
contradiction: both runs decided (faster, slower, higher, lower, equivalent; at least or less than several times) and
their outcomes differ. Shares over the comparisons both runs judged by an interval: the same outcome, and decided (in
both runs); the thresholds hold for the comparisons of what the runs measured, and the shares are printed with the
reference study's too, which reads the committed GPU records (results/reference) and so is the same in every run. Facts
without an interval (outcome 'none') are compared apart. Prints the contradictions first, then the outcomes that changed
between decided and undecided, then the shares; exit 1 on any contradiction or a share below its threshold (issue 20:
at least 90 % the same outcome, at least 70 % decided), 2 when a folder holds no verdicts.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

UNDECIDED, NONE = "undecided", "none"
COMMITTED = "reference/"  # the reference study's keys: drawn from committed records, not from the run


def load(generated: Path) -> dict[str, dict]:
    """Every comparison of a run's generated folder (one verdicts.json per study), by key; copies left out."""
    found = {}
    for path in sorted(Path(generated).glob("*/verdicts.json")):
        for v in json.loads(path.read_text()):
            if not v.get("copy_of"):
                found[v["key"]] = v
    return found


def decided(v: dict) -> bool:
    return v["outcome"] not in (UNDECIDED, NONE)


def compare(a: dict[str, dict], b: dict[str, dict]) -> dict:
    """Over the keys both runs judged by an interval: contradictions (both decided, outcomes differ), the share with
    the same outcome, the share decided in both runs and the keys whose outcome moved between decided and undecided;
    facts (outcome none) whose text changed; the keys only one run has."""
    common = sorted(set(a) & set(b))
    facts = [k for k in common if NONE in (a[k]["outcome"], b[k]["outcome"]) and a[k].get("fact") != b[k].get("fact")]
    judged = [k for k in common if NONE not in (a[k]["outcome"], b[k]["outcome"])]
    measured = [k for k in judged if not k.startswith(COMMITTED)]
    return {**shares(a, b, measured), "with_committed": shares(a, b, judged), "facts_changed": facts,
            "only_first": sorted(set(a) - set(b)), "only_second": sorted(set(b) - set(a))}


def shares(a: dict[str, dict], b: dict[str, dict], judged: list[str]) -> dict:
    """Over the keys given: contradictions, the keys whose outcome moved, the share with the same outcome and the
    share decided in both runs."""
    contradictions = [k for k in judged if decided(a[k]) and decided(b[k]) and a[k]["outcome"] != b[k]["outcome"]]
    moved = [k for k in judged if decided(a[k]) != decided(b[k])]
    same = [k for k in judged if a[k]["outcome"] == b[k]["outcome"]]
    both = [k for k in judged if decided(a[k]) and decided(b[k])]
    n = len(judged)
    return {"compared": n, "contradictions": contradictions, "moved": moved,
            "same": len(same) / n if n else float("nan"), "decided": len(both) / n if n else float("nan")}


def describe(v: dict) -> str:
    return f"{v['estimate']:.3g} [{v['lo']:.3g}, {v['hi']:.3g}] {v['outcome']} ({v['kind']})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path, help="the first run's generated folder")
    parser.add_argument("second", type=Path, help="the second run's generated folder")
    parser.add_argument("--same", type=float, default=0.90, help="least share with the same outcome (default 0.90)")
    parser.add_argument("--decided", type=float, default=0.70, help="least share decided in both runs (default 0.70)")
    args = parser.parse_args(argv)
    a, b = load(args.first), load(args.second)
    for folder, found in ((args.first, a), (args.second, b)):
        if not found:
            print(f"compare_runs: error: {folder}: no */verdicts.json with verdicts in it", file=sys.stderr)
            return 2
    result = compare(a, b)
    every = result["with_committed"]
    for key in every["contradictions"]:
        print(f"contradiction: {key}: {describe(a[key])} -> {describe(b[key])}")
    for key in every["moved"]:
        print(f"outcome moved: {key}: {describe(a[key])} -> {describe(b[key])}")
    for key in result["facts_changed"]:
        print(f"fact changed:  {key}: {a[key].get('fact')!r} -> {b[key].get('fact')!r}")
    if result["only_first"] or result["only_second"]:
        print(f"only in one run: {len(result['only_first'])} in the first, {len(result['only_second'])} in the second")
    print(f"{result['compared']} comparisons in both runs: {len(result['contradictions'])} contradictions, the same "
          f"outcome in {100 * result['same']:.1f} % (goal {100 * args.same:g} %), decided in both in "
          f"{100 * result['decided']:.1f} % (goal {100 * args.decided:g} %)")
    print(f"with the {every['compared'] - result['compared']} of committed records: {every['compared']} comparisons, "
          f"{len(every['contradictions'])} contradictions, the same outcome in {100 * every['same']:.1f} %, decided "
          f"in both in {100 * every['decided']:.1f} %")
    ok = not every["contradictions"] and result["same"] >= args.same and result["decided"] >= args.decided
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
